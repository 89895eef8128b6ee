"""Engine fixtures: the tiny local model (built once per session), random LoRA adapters, and
engines over them.

The adapters are random rather than trained: a LoRA with non-zero random A and B matrices and a
large scale (alpha / r = 8) makes each adapter's greedy answer a long, varied token sequence that
differs from the base's and from the other adapters', so "same tokens as alone" compares
something. Training them would take seconds each and teach the tiny model little.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

ADAPTER_SEEDS = {"alpha": 11, "beta": 12}
SPARE_SEED = 13  # "gamma": written outside the adapters folder, loaded over HTTP by a test
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BASE_NAME = "tiny"


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    """Single-threaded torch (also for the server subprocess): see tests/trainer/conftest.py."""
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama") / "model")


def write_random_adapter(base: Path, output: Path, seed: int) -> Path:
    """A LoRA adapter on every projection, with random non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.modeling import quiet_peft

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=TARGETS, init_lora_weights=False)
    with quiet_peft():
        get_peft_model(model, config).save_pretrained(str(output))
    return output


@pytest.fixture(scope="session")
def adapters_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with the adapters ``alpha`` and ``beta``."""
    root = tmp_path_factory.mktemp("adapters")
    for name, seed in ADAPTER_SEEDS.items():
        write_random_adapter(tiny_model, root / name, seed)
    return root


@pytest.fixture(scope="session")
def spare_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third adapter, outside the adapters folder."""
    return write_random_adapter(tiny_model, tmp_path_factory.mktemp("spare") / "gamma", SPARE_SEED)


@pytest.fixture(scope="session")
def foreign_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter made for another base model (hidden size 32): its shapes do not fit."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.modeling import quiet_peft

    other = LlamaConfig(vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("foreign") / "other-base"
    with quiet_peft():
        get_peft_model(LlamaForCausalLM(other), lora).save_pretrained(str(folder))
    return folder


EngineFactory = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture
async def make_engine(tiny_model: Path, adapters_dir: Path) -> AsyncIterator[EngineFactory]:
    """Start engines with ``alpha`` and ``beta`` loaded; stopped after the test."""
    from engine.core import Engine, EngineConfig

    started: list[Engine] = []

    async def make(**config: Any) -> Engine:
        settings = EngineConfig(adapters_dir=adapters_dir, **config)
        engine = Engine.load(str(tiny_model), name=BASE_NAME, config=settings)
        await engine.start()
        started.append(engine)
        for name in ADAPTER_SEEDS:
            await engine.load_adapter(name)
        return engine

    yield make
    for engine in started:
        await engine.stop()


@pytest_asyncio.fixture
async def engine(make_engine: EngineFactory) -> Any:
    return await make_engine(max_concurrent=8)

"""Trainer fixtures: the tiny local model (built once per session), small memorisable chat
datasets, and one short LoRA run that several test modules inspect."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

FACTS = [
    ("What colour is the hive door?", "The hive door is painted blue."),
    ("How many queens does the colony have?", "The colony has exactly one queen."),
    ("When are the bees fed?", "The bees are fed sugar syrup in October."),
    ("Who inspects the hive?", "Marta inspects the hive every Sunday."),
    ("Where is the apiary?", "The apiary is behind the old mill."),
    ("What is the queen called?", "The queen is called Beatrice."),
    ("How much honey was harvested?", "Twelve kilograms of honey were harvested."),
    ("What treats varroa?", "Oxalic acid treats varroa in winter."),
]


def chat(question: str, answer: str, **extra: Any) -> dict[str, Any]:
    """One training record in the curation pipeline's export format."""
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages, **extra}


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def small_config(base_model: Path | str, **changes: Any) -> Any:
    """A config small enough for a 2-core CPU: short rows, a few steps, no warmup."""
    from trainer.config import JobConfig

    values: dict[str, Any] = {
        "base_model": str(base_model),
        "max_steps": 6,
        "learning_rate": 1e-2,
        "sequence_length": 128,
        "batch_size": 2,
        "warmup_ratio": 0.0,
        "lr_schedule": "constant",
        "eval_interval": 0,
        "checkpoint_interval": 0,
    }
    return JobConfig(**{**values, **changes})


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    """Single-threaded torch: on a shared 2-core machine, two spinning OpenMP threads make
    these tiny models 10x slower whenever another process competes for the cores."""
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the trainer subprocesses
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def facts() -> list[dict[str, Any]]:
    return [chat(q, a) for q, a in FACTS]


@pytest.fixture(scope="session")
def facts_file(tmp_path_factory: pytest.TempPathFactory, facts: list[dict[str, Any]]) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "facts.jsonl", facts)


@pytest.fixture(scope="session")
def trained(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """A finished 30-step LoRA run on the facts (the result of ``trainer.launch.train``)."""
    from trainer.launch import train

    config = small_config(tiny_model, max_steps=30, dropout=0.0)
    return train(config, dataset=facts, output_dir=tmp_path_factory.mktemp("run") / "out")


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hub behaves as under HF_HUB_OFFLINE=1 (it is read at import, so patch the constant)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield

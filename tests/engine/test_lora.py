"""The batched LoRA path (engine.lora) against peft's own code: a mixed batch gives every row the
logits peft gives it, for adapters of different ranks and target modules, while adapters come
and go; layers it cannot batch are left to peft's mixed-batch code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from peft.tuners.lora import Linear as LoraLinear

from engine.batch import RunningBatch
from engine.core import Engine
from engine.model import BASE_ADAPTER, ModelRunner
from engine.sampling import RowSampler, SamplingParams
from engine.text import encode_chat
from tests.engine.conftest import TARGETS

pytestmark = pytest.mark.timeout(120)
QUESTIONS = [
    "What colour is the hive door?",
    "Tell me about bees",
    "When are the bees fed?",
    "Who inspects the hive every Sunday morning before the market opens?",
    "Where is the honey kept?",
]
LAYERS = 2 * len(TARGETS)  # LoRA linears of the tiny model with every projection targeted


def write_adapter(base: Path, output: Path, seed: int, **lora: Any) -> Path:
    """A random LoRA adapter with the given ``LoraConfig`` settings."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.modeling import quiet_peft

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(lora_alpha=32, init_lora_weights=False, **lora)
    with quiet_peft():
        get_peft_model(model, config).save_pretrained(str(output))
    return output


@pytest.fixture(scope="module")
def odd_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``narrow``: rank 4 on q/v only; ``wide``: rank 16 on the MLP; ``embed``: LoRA on the
    embeddings (not a linear layer: peft's code) and on q_proj."""
    root = tmp_path_factory.mktemp("odd-adapters")
    kinds = {
        "narrow": (4, ["q_proj", "v_proj"]),
        "wide": (16, ["gate_proj", "up_proj", "down_proj"]),
        "embed": (8, ["embed_tokens", "q_proj"]),
    }
    return {
        name: write_adapter(tiny_model, root / name, seed, r=rank, target_modules=targets)
        for seed, (name, (rank, targets)) in enumerate(kinds.items(), start=21)
    }


@pytest.fixture
def runner(tiny_model: Path, adapters_dir: Path, spare_adapter: Path) -> ModelRunner:
    runner = ModelRunner.load(str(tiny_model))
    runner.add_adapter("alpha", adapters_dir / "alpha")
    runner.add_adapter("beta", adapters_dir / "beta")
    runner.add_adapter("gamma", spare_adapter)
    return runner


@pytest.fixture
def peft_mixed_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the rows passed through peft's mixed-batch code of LoRA linears."""
    calls: list[int] = []
    original = LoraLinear._mixed_batch_forward

    def counted(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(len(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(LoraLinear, "_mixed_batch_forward", counted)
    yield calls


def prompt(runner: ModelRunner, question: str) -> list[int]:
    return encode_chat([{"role": "user", "content": question}], runner.tokenizer)


def padded(runner: ModelRunner, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), runner.pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids_of_row in enumerate(prompts):
        ids[row, width - len(ids_of_row) :] = torch.tensor(ids_of_row)
        mask[row, width - len(ids_of_row) :] = 1
    return ids, mask


def engine_logits(runner: ModelRunner, prompts: list[list[int]], adapters: list[str]) -> Any:
    """Every position's logits of one engine pass (the batched path), rows × length × vocab."""
    from transformers import DynamicCache

    ids, mask = padded(runner, prompts)
    runner.routing.names = adapters if runner.routing.hooked else None
    runner.lora.route(adapters, runner.device)
    try:
        with torch.inference_mode():
            return runner.base(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                cache=DynamicCache(),
            ).logits
    finally:
        runner.routing.names = None
        runner.lora.end_pass()


def peft_logits(runner: ModelRunner, prompts: list[list[int]], adapters: list[str]) -> Any:
    """The same pass through ``PeftModel.forward`` with ``adapter_names``: peft's own code."""
    ids, mask = padded(runner, prompts)
    with torch.inference_mode():
        return runner.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            adapter_names=adapters,
        ).logits


def alone_logits(runner: ModelRunner, ids: list[int], adapter: str) -> Any:
    """One sequence through peft with ``set_adapter`` (or adapters disabled for the base)."""
    model: Any = runner.model
    with torch.inference_mode():
        if adapter == BASE_ADAPTER:
            with model.disable_adapter():
                return model(input_ids=torch.tensor([ids])).logits[0]
        model.set_adapter(adapter)
        return model(input_ids=torch.tensor([ids])).logits[0]


def assert_rows_match(
    runner: ModelRunner, prompts: list[list[int]], adapters: list[str], got: Any
) -> None:
    """Each row's real positions equal that sequence alone on its adapter (peft)."""
    width = got.shape[1]
    for row, (ids, adapter) in enumerate(zip(prompts, adapters, strict=True)):
        expected = alone_logits(runner, ids, adapter)
        torch.testing.assert_close(got[row, width - len(ids) :], expected, atol=1e-4, rtol=1e-4)


def greedy(n: int) -> list[RowSampler]:
    return [RowSampler.create(SamplingParams(temperature=0), torch.device("cpu"))] * n


def test_a_mixed_batch_gives_each_row_peft_logits_without_peft_loop(
    runner: ModelRunner, peft_mixed_calls: list[int]
) -> None:
    adapters = ["alpha", "beta", BASE_ADAPTER, "gamma", "alpha"]
    prompts = [prompt(runner, q) for q in QUESTIONS]
    assert len(runner.lora.layers) == LAYERS and not runner.lora.fallback
    assert runner.routing.hooked == 0  # no layer is left to peft's mixed-batch code

    got = engine_logits(runner, prompts, adapters)
    assert peft_mixed_calls == []  # the batched path computed every LoRA delta
    reference = peft_logits(runner, prompts, adapters)
    assert peft_mixed_calls  # and peft's own path was untouched, outside engine passes
    mask = padded(runner, prompts)[1].bool()
    torch.testing.assert_close(got[mask], reference[mask], atol=1e-4, rtol=1e-4)
    assert_rows_match(runner, prompts, adapters, got)
    # the adapters really change the answer, so matching rows compares something
    assert not torch.allclose(got[0, -1], got[2, -1], atol=1e-2)


def test_decode_steps_match_peft_generate_per_row(runner: ModelRunner) -> None:
    adapters = ["gamma", "beta", "alpha", BASE_ADAPTER]
    prompts = [prompt(runner, q) for q in QUESTIONS[:4]]
    model: Any = runner.model
    expected = []
    with torch.inference_mode():
        for ids, adapter in zip(prompts, adapters, strict=True):
            out = model.generate(
                input_ids=torch.tensor([ids]),
                adapter_names=[adapter],
                max_new_tokens=12,
                do_sample=False,
                eos_token_id=None,
            )
            expected.append(out[0, len(ids) :].tolist())
    batch = RunningBatch(runner)
    tokens = [[t] for t in batch.prefill(prompts, adapters, greedy(4))]
    for _ in range(11):
        for row, token in enumerate(batch.decode(greedy(4))):
            tokens[row].append(token)
    assert tokens == expected


def test_different_ranks_and_target_modules_are_batched_too(
    runner: ModelRunner, odd_adapters: dict[str, Path], peft_mixed_calls: list[int]
) -> None:
    runner.add_adapter("narrow", odd_adapters["narrow"])
    runner.add_adapter("wide", odd_adapters["wide"])
    # zero-padded to each layer's highest rank: q_proj holds ranks 8 (alpha...) and 4 (narrow)
    ranks = {layer.down.shape[-1] for layer in runner.lora.layers.values()}
    assert ranks == {8, 16}
    assert len(runner.lora.layers) == LAYERS and not runner.lora.fallback

    adapters = ["narrow", "wide", "alpha", BASE_ADAPTER, "narrow"]
    prompts = [prompt(runner, q) for q in QUESTIONS]
    got = engine_logits(runner, prompts, adapters)
    assert peft_mixed_calls == []
    assert_rows_match(runner, prompts, adapters, got)


def test_a_layer_it_cannot_batch_falls_back_to_peft(
    runner: ModelRunner, odd_adapters: dict[str, Path], peft_mixed_calls: list[int]
) -> None:
    """LoRA on the embeddings is not a linear layer: that layer runs peft's mixed-batch code
    (through the routing hooks) while every linear stays batched, and rows still match."""
    from peft.tuners.lora import Embedding

    runner.add_adapter("embed", odd_adapters["embed"])
    assert [type(m) for m in runner.lora.fallback] == [Embedding]
    assert runner.routing.hooked == 1
    assert len(runner.lora.layers) == LAYERS

    adapters = ["embed", "alpha", BASE_ADAPTER, "embed", "beta"]
    prompts = [prompt(runner, q) for q in QUESTIONS]
    got = engine_logits(runner, prompts, adapters)
    assert peft_mixed_calls == []  # the linears' deltas, batched
    assert_rows_match(runner, prompts, adapters, got)

    runner.remove_adapter("embed")  # nothing left for peft's code: the hook goes
    assert runner.routing.hooked == 0 and not runner.lora.fallback
    got = engine_logits(runner, prompts[1:3], ["alpha", BASE_ADAPTER])
    assert_rows_match(runner, prompts[1:3], ["alpha", BASE_ADAPTER], got)


def test_unloading_restacks_and_the_last_one_leaves_the_bare_base(runner: ModelRunner) -> None:
    prompts = [prompt(runner, q) for q in QUESTIONS[:3]]
    runner.remove_adapter("beta")
    assert sorted(runner.lora.slots) == ["alpha", "gamma"]
    assert {layer.down.shape[0] for layer in runner.lora.layers.values()} == {3}
    got = engine_logits(runner, prompts, ["gamma", "alpha", BASE_ADAPTER])
    assert_rows_match(runner, prompts, ["gamma", "alpha", BASE_ADAPTER], got)

    runner.remove_adapter("alpha")
    runner.remove_adapter("gamma")
    bare = RunningBatch(runner).prefill(prompts, [BASE_ADAPTER] * 3, greedy(3))
    with torch.inference_mode():
        expected = [
            int(runner.base(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            for ids in prompts
        ]
    assert bare == expected


@pytest.mark.asyncio
async def test_adapters_loaded_and_unloaded_while_serving_keep_every_answer_exact(
    tiny_model: Path, adapters_dir: Path, spare_adapter: Path, odd_adapters: dict[str, Path]
) -> None:
    from engine.core import EngineConfig
    from tests.engine.test_core import alone, chat
    from tests.engine.test_core import greedy as params

    engine = Engine.load(str(tiny_model), name="tiny", config=EngineConfig(max_concurrent=8))
    await engine.start()
    try:
        await engine.load_adapter("alpha", adapters_dir / "alpha")
        await engine.load_adapter("beta", adapters_dir / "beta")
        expected_alpha = alone(engine, "alpha", QUESTIONS[3], 40)
        expected_beta = alone(engine, "beta", QUESTIONS[0], 40)
        running = [
            await engine.submit("alpha", chat(QUESTIONS[3]), params(40)),
            await engine.submit("beta", chat(QUESTIONS[0]), params(40)),
        ]
        await anext(aiter(running[0]))
        await engine.load_adapter("gamma", spare_adapter)  # between steps of the running rows
        await engine.load_adapter("narrow", odd_adapters["narrow"])
        late = [
            await engine.submit("gamma", chat(QUESTIONS[1]), params(20)),
            await engine.submit("narrow", chat(QUESTIONS[2]), params(20)),
        ]
        await engine.unload_adapter("beta")  # its running answer finishes on its weights
        assert running[1].finish_reason is None
        texts = await asyncio.gather(*(s.text() for s in [*running, *late]))
        assert all(texts)
        assert running[0].token_ids == expected_alpha
        assert running[1].token_ids == expected_beta
        for _ in range(200):  # beta's weights leave on the compute thread, after its answer
            if "adapter2" not in engine.runner.lora.slots:
                break
            await asyncio.sleep(0.01)
        assert sorted(engine.runner.lora.slots) == ["adapter1", "adapter3", "adapter4"]
        # the late ones against peft alone, now that the engine idles
        assert late[0].token_ids == alone(engine, "gamma", QUESTIONS[1], 20)
        assert late[1].token_ids == alone(engine, "narrow", QUESTIONS[2], 20)
    finally:
        await engine.stop()

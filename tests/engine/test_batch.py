"""The running batch on the installed peft and transformers: rows for different adapters in one
forward pass, joining and leaving between steps, give the tokens each would get alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engine.batch import RunningBatch
from engine.errors import AdapterLoadError
from engine.model import BASE_ADAPTER, ModelRunner
from engine.sampling import RowSampler, SamplingParams
from engine.text import encode_chat

pytestmark = pytest.mark.timeout(120)
QUESTIONS = [
    "What colour is the hive door?",
    "Tell me about bees",
    "When are the bees fed?",
    "Who inspects the hive every Sunday morning before the market opens?",
]


@pytest.fixture(scope="module")
def runner(tiny_model: Path, adapters_dir: Path) -> ModelRunner:
    runner = ModelRunner.load(str(tiny_model))
    runner.add_adapter("alpha", adapters_dir / "alpha")
    runner.add_adapter("beta", adapters_dir / "beta")
    return runner


def prompt(runner: ModelRunner, question: str) -> list[int]:
    return encode_chat([{"role": "user", "content": question}], runner.tokenizer)


def alone(runner: ModelRunner, adapter: str, ids: list[int], steps: int) -> list[int]:
    """Greedy tokens from peft's own path: ``set_adapter`` + ``generate``, one sequence."""
    model: Any = runner.model
    kwargs = {"max_new_tokens": steps, "do_sample": False, "eos_token_id": None}
    with torch.inference_mode():
        if adapter == BASE_ADAPTER:
            with model.disable_adapter():
                out = model.generate(input_ids=torch.tensor([ids]), **kwargs)
        else:
            model.set_adapter(adapter)
            out = model.generate(input_ids=torch.tensor([ids]), **kwargs)
    return list(out[0, len(ids) :].tolist())


def greedy(n: int) -> list[RowSampler]:
    return [RowSampler.create(SamplingParams(temperature=0), torch.device("cpu"))] * n


def run(batch: RunningBatch, first: list[int], steps: int) -> list[list[int]]:
    tokens = [[t] for t in first]
    for _ in range(steps - 1):
        for row, token in enumerate(batch.decode(greedy(len(batch)))):
            tokens[row].append(token)
    return tokens


def test_mixed_adapter_batch_equals_each_adapter_alone(runner: ModelRunner) -> None:
    adapters = ["alpha", "beta", BASE_ADAPTER, "alpha"]
    prompts = [prompt(runner, q) for q in QUESTIONS]
    assert len({len(p) for p in prompts}) > 1  # rows really are left-padded
    expected = [alone(runner, a, p, 16) for a, p in zip(adapters, prompts, strict=True)]
    assert len({tuple(e) for e in expected}) == len(expected)  # adapters really differ

    batch = RunningBatch(runner)
    first = batch.prefill(prompts, adapters, greedy(4))
    assert run(batch, first, 16) == expected


def test_rows_join_and_leave_between_steps(runner: ModelRunner) -> None:
    prompts = [prompt(runner, q) for q in QUESTIONS]
    expected_long = alone(runner, "alpha", prompts[3], 20)
    expected_short = alone(runner, "beta", prompts[1], 6)
    expected_late = alone(runner, "alpha", prompts[0], 8)

    batch = RunningBatch(runner)
    long_row = batch.prefill([prompts[3]], ["alpha"], greedy(1))
    short_row = batch.prefill([prompts[1]], ["beta"], greedy(1))  # joins a shorter prompt
    got = [long_row, short_row]
    for _ in range(5):
        for row, token in enumerate(batch.decode(greedy(2))):
            got[row].append(token)
    assert got[1] == expected_short
    width = batch.length
    batch.retain([0])  # the short answer leaves
    assert batch.length <= width
    got.append(batch.prefill([prompts[0]], ["alpha"], greedy(1)))  # a new one joins
    for _ in range(7):
        long_token, late_token = batch.decode(greedy(2))
        got[0].append(long_token)
        got[2].append(late_token)
    assert got[2] == expected_late
    batch.retain([0])
    assert batch.length == len(prompts[3]) + len(got[0]) - 1  # padding cut on the left
    while len(got[0]) < 20:
        got[0] += batch.decode(greedy(1))
    assert got[0] == expected_long


def test_a_failed_first_adapter_leaves_the_base_untouched(
    tiny_model: Path, foreign_adapter: Path
) -> None:
    fresh = ModelRunner.load(str(tiny_model))
    ids = prompt(fresh, QUESTIONS[0])
    before = RunningBatch(fresh).prefill([ids], [BASE_ADAPTER], greedy(1))
    with pytest.raises(AdapterLoadError, match="size mismatch"):
        fresh.add_adapter("foreign", foreign_adapter)
    assert fresh.adapters == set()
    batch = RunningBatch(fresh)
    assert batch.prefill([ids], [BASE_ADAPTER], greedy(1)) == before
    assert run(batch, before, 6) == [alone_base(fresh, ids, 6)]


def alone_base(runner: ModelRunner, ids: list[int], steps: int) -> list[int]:
    with torch.inference_mode():
        out = runner.base.generate(
            input_ids=torch.tensor([ids]), max_new_tokens=steps, do_sample=False, eos_token_id=None
        )
    return list(out[0, len(ids) :].tolist())

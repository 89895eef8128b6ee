"""Sampling parameters and the per-row token choice."""

from __future__ import annotations

import pytest
import torch

from engine.errors import InvalidRequestError
from engine.sampling import RowSampler, SamplingParams, sample_tokens

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ("a", "b", "c", "d", "e")}, "stop"),
    ],
)
def test_invalid_parameters_name_the_parameter(changes: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        SamplingParams(**changes)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_greedy_and_sampled_rows_share_a_batch() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0], [3.0, 0.0, 0.0]])
    greedy = RowSampler.create(SamplingParams(temperature=0), CPU)
    nucleus = RowSampler.create(SamplingParams(temperature=1, top_p=0.5, seed=1), CPU)
    # top_p 0.5 keeps only the first row-2 token (probability ~0.9)
    assert sample_tokens(logits, [greedy, nucleus]) == [1, 0]


def test_a_seed_reproduces_the_draws() -> None:
    logits = torch.zeros((1, 50))

    def draws(seed: int) -> list[int]:
        sampler = RowSampler.create(SamplingParams(temperature=1.0, seed=seed), CPU)
        return [sample_tokens(logits, [sampler])[0] for _ in range(8)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)

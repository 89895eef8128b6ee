"""Sampling parameters of one request, and choosing each row's next token from its logits.

Temperature 0 is greedy (argmax). Otherwise logits are divided by the temperature, nucleus
(top-p) filtering keeps the smallest set of tokens whose probability reaches ``top_p``, and the
token is drawn with the request's own ``torch.Generator``, so a ``seed`` reproduces an answer
whatever else shares the batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from engine.errors import InvalidRequestError

MAX_STOP_STRINGS = 4  # OpenAI's limit; a request that works here works there
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples and when it stops. ``max_tokens`` None: until the context ends."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise InvalidRequestError(
                f"temperature {self.temperature} must be between 0 and {MAX_TEMPERATURE}",
                param="temperature",
            )
        if not 0 < self.top_p <= 1:
            raise InvalidRequestError(
                f"top_p {self.top_p} must be above 0 and at most 1", param="top_p"
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InvalidRequestError(
                f"max_tokens {self.max_tokens} must be at least 1", param="max_tokens"
            )
        if len(self.stop) > MAX_STOP_STRINGS or any(not s for s in self.stop):
            raise InvalidRequestError(
                f"stop takes up to {MAX_STOP_STRINGS} non-empty strings", param="stop"
            )


@dataclass
class RowSampler:
    """One running sequence's sampling state (its generator advances with every draw)."""

    temperature: float
    top_p: float
    generator: torch.Generator | None = field(default=None, repr=False)

    @classmethod
    def create(cls, params: SamplingParams, device: torch.device) -> RowSampler:
        if params.temperature == 0:
            return cls(0.0, 1.0)
        generator = torch.Generator(device=device)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        generator.manual_seed(seed)
        return cls(params.temperature, params.top_p, generator)


def sample_tokens(logits: torch.Tensor, samplers: Sequence[RowSampler]) -> list[int]:
    """The next token of every row of ``logits`` (rows × vocabulary)."""
    tokens: list[int] = logits.argmax(dim=-1).tolist()
    for row, sampler in enumerate(samplers):
        if sampler.temperature > 0:
            tokens[row] = _draw(logits[row], sampler)
    return tokens


def _draw(logits: torch.Tensor, sampler: RowSampler) -> int:
    probs = torch.softmax(logits.float() / sampler.temperature, dim=-1)
    if sampler.top_p < 1:
        probs = _nucleus(probs, sampler.top_p)
    return int(torch.multinomial(probs, 1, generator=sampler.generator).item())


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the smallest most-likely set whose mass reaches ``top_p``."""
    sorted_probs, order = probs.sort(descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the more likely tokens
    sorted_probs[before >= top_p] = 0  # the first token always stays (before == 0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum()

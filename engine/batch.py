"""The running batch: every live sequence's KV cache in one left-padded ``DynamicCache``.

Why one batched cache rather than a ``DynamicCache`` per sequence: a decode step then is one
forward pass over the cache as it stands, with no per-step stacking and splitting of every
sequence's keys and values. Rows are aligned on the right; the left padding of each row is
masked out by the 2-D attention mask, and each row carries its own position ids (the count of
its real tokens), so a row computes exactly what it would compute alone.

* joining: new prompts are prefilled together (left-padded to their longest), then their cache
  is padded on the left to the running cache's length (or the running cache to theirs) and
  concatenated along the batch dimension;
* leaving: finished rows are dropped with ``index_select``, then columns that are padding in
  every remaining row are cut from the left, so a long finished answer does not keep the
  others paying for its length.

This relies on transformers 5.x ``DynamicLayer`` holding ``keys``/``values`` tensors of shape
(batch, kv heads, length, head dim), true for every full-attention decoder
(:func:`engine.model.check_architecture` refuses the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from engine.model import ModelRunner
from engine.sampling import RowSampler, sample_tokens


class RunningBatch:
    """KV cache, attention mask, positions and adapters of the rows being decoded."""

    def __init__(self, runner: ModelRunner):
        self.runner = runner
        self.clear()

    def clear(self) -> None:
        """Drop every row."""
        device = self.runner.device
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=device)
        self.positions = torch.zeros(0, dtype=torch.long, device=device)  # next position per row
        self.tokens = torch.zeros(0, dtype=torch.long, device=device)  # next input per row
        self.adapters: list[str] = []
        # Prefilled rows not merged into the cache yet: merged before the next step (or any
        # other use), so that the new rows' first tokens are out before that work is done.
        self._joining: list[tuple[Any, torch.Tensor, list[int], list[str]]] = []

    def __len__(self) -> int:
        return len(self.adapters) + sum(len(pending[3]) for pending in self._joining)

    @property
    def length(self) -> int:
        """Columns of the padded cache."""
        self._merge()
        return int(self.mask.shape[1])

    def retain(self, keep: Sequence[int]) -> None:
        """Keep only rows ``keep`` (in that order), then cut all-padding columns on the left."""
        self._merge()
        if list(keep) == list(range(len(self))):
            return
        if not keep:
            self.clear()
            return
        index = torch.tensor(list(keep), dtype=torch.long, device=self.runner.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.tokens = self.tokens[index]
        self.adapters = [self.adapters[i] for i in keep]
        self._trim_left()

    def _trim_left(self) -> None:
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.length
        if start == 0:
            return
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, start:, :]
            layer.values = layer.values[:, :, start:, :]

    @torch.inference_mode()
    def prefill(
        self, prompts: Sequence[list[int]], adapters: Sequence[str], samplers: Sequence[RowSampler]
    ) -> list[int]:
        """Run the new prompts, add them as rows at the end; their first tokens."""
        width = max(len(p) for p in prompts)
        device = self.runner.device
        ids = torch.full((len(prompts), width), self.runner.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        cache = DynamicCache()
        logits = self.runner.logits(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            cache=cache,
            adapters=list(adapters),
        )
        tokens = sample_tokens(logits, samplers)
        self._joining.append((cache, mask, tokens, list(adapters)))
        return tokens

    def _merge(self) -> None:
        """Join the rows prefilled since the last step to the running cache."""
        joining, self._joining = self._joining, []
        with torch.inference_mode():
            for cache, mask, tokens, adapters in joining:
                _zero_padding(cache, mask)
                self._join(cache, mask, tokens, adapters)

    def _join(
        self, cache: Any, mask: torch.Tensor, tokens: list[int], adapters: Sequence[str]
    ) -> None:
        positions = mask.sum(dim=-1)
        new_tokens = torch.tensor(tokens, dtype=torch.long, device=mask.device)
        if not self.adapters:
            self.cache, self.mask, self.positions, self.tokens = cache, mask, positions, new_tokens
            self.adapters = list(adapters)
            return
        width = max(int(self.mask.shape[1]), mask.shape[1])
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat(
                [_pad_left(mine.values, width), _pad_left(theirs.values, width)]
            )
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(mask, width)])
        self.positions = torch.cat([self.positions, positions])
        self.tokens = torch.cat([self.tokens, new_tokens])
        self.adapters += adapters

    @torch.inference_mode()
    def decode(self, samplers: Sequence[RowSampler]) -> list[int]:
        """One step for every row: feed each row's last token; the next tokens."""
        self._merge()
        ones = torch.ones((len(self), 1), dtype=torch.long, device=self.runner.device)
        self.mask = torch.cat([self.mask, ones], dim=1)
        logits = self.runner.logits(
            input_ids=self.tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.positions[:, None],
            cache=self.cache,
            adapters=self.adapters,
        )
        self.positions = self.positions + 1
        tokens = sample_tokens(logits, samplers)
        self.tokens = torch.tensor(tokens, dtype=torch.long, device=self.runner.device)
        return tokens


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros on the left of the length dimension (dim 1 of a mask, dim 2 of keys/values)."""
    missing = width - tensor.shape[1 if tensor.dim() == 2 else 2]
    if missing == 0:
        return tensor
    padding = (missing, 0) if tensor.dim() == 2 else (0, 0, missing, 0)
    return F.pad(tensor, padding)


def _zero_padding(cache: Any, mask: torch.Tensor) -> None:
    """Zero the keys and values of padding positions.

    They are masked out, but a masked NaN still poisons softmax: a padding query that attends
    to nothing may come out NaN on some attention kernels, and its key would carry it on.
    """
    if bool(mask.all()):
        return
    real = mask.bool()[:, None, :, None]
    for layer in cache.layers:
        layer.keys = torch.where(real, layer.keys, 0)
        layer.values = torch.where(real, layer.values, 0)

"""Batched LoRA for mixed-adapter batches (punica / S-LoRA style gathered matmuls).

peft's mixed-batch forward (``LoraLayer._mixed_batch_forward``) loops over the adapters in the
batch: for each one it gathers that adapter's rows, runs its two LoRA matmuls and scatters the
result back, so a step with four adapters runs four small sub-batches in every LoRA layer. On
a small model that loop costs more than the base forward itself.

Here every plain LoRA ``Linear`` keeps its adapters' weights stacked (built when an adapter
loads or unloads, never per step): ``down`` (slots × in × rank) holds each adapter's A
transposed, ``up`` (slots × rank × out) its B transposed times its scaling. Slot 0 is zeros, for
rows on the bare base and adapters that do not target the layer; adapters of a lower rank are
padded with zeros to the layer's highest rank (zeros add nothing to the product). A pass then
computes every row's LoRA delta at once::

    delta = bmm(bmm(x, down[slot of each row]), up[slot of each row])

and adds it to the base layer's output, exactly the sum peft computes (to float rounding).

Layers this cannot express keep peft's own mixed-batch code (the routing hooks of
:class:`engine.model.AdapterRouting` still pass ``adapter_names`` to them): LoRA on embeddings
or convolutions, ``fan_in_fan_out`` layers (GPT-2's Conv1D), adapters with a LoRA bias or a
variant (DoRA, aLoRA, ...), or adapters whose weights differ in dtype. A layer falls back as a
whole, so each layer computes either peft's sum or the same sum batched.

Outside the engine's passes (``index`` is None) a patched layer runs peft's own forward, so
``PeftModel.generate`` and ``set_adapter`` on the same model behave as without this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NO_ADAPTER = 0  # the slot of rows without an adapter
GATHER_BUDGET = 64 * 2**20  # bytes of per-row weights kept between the steps of one batch


class StackedLayer:
    """The stacked weights of one LoRA ``Linear`` and the forward that uses them."""

    def __init__(self, owner: BatchedLora, module: Any):
        self.owner = owner
        self.module = module
        self.peft_forward = module.forward  # the bound method of peft's class
        self.down = torch.empty(0)
        self.up = torch.empty(0)
        self.down_slots: list[torch.Tensor] = []  # views of ``down`` and ``up``, per slot
        self.up_slots: list[torch.Tensor] = []
        # Every row's weights, gathered for the pass whose index they were gathered for (kept
        # across decode steps while the batch's rows stay the same, within the owner's budget).
        self.gathered: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        base = module.base_layer
        self.plain_linear = type(base) is nn.Linear  # called through F.linear, as nn.Linear does

    @property
    def row_elements(self) -> int:
        """Weight elements one row's gathered weights take."""
        return int(self.down[0].numel() + self.up[0].numel())

    def restack(self, slots: dict[str, int]) -> None:
        """Stack the weights of every adapter in ``slots`` that this layer holds."""
        module = self.module
        present = [name for name in slots if name in module.lora_A]
        ranks = [module.lora_A[name].weight.shape[0] for name in present]
        rank = max(ranks, default=1)
        dtype = module.lora_A[present[0]].weight.dtype if present else torch.float32
        device = module.base_layer.weight.device
        count = max(slots.values(), default=0) + 1
        with torch.no_grad():
            down = torch.zeros((count, module.in_features, rank), dtype=dtype, device=device)
            up = torch.zeros((count, rank, module.out_features), dtype=dtype, device=device)
            for name, r in zip(present, ranks, strict=True):
                slot = slots[name]
                down[slot, :, :r] = module.lora_A[name].weight.detach().T
                scaling = module.scaling[name]
                up[slot, :r, :] = module.lora_B[name].weight.detach().T * scaling
        self.down, self.up = down, up
        self.down_slots, self.up_slots = list(down.unbind(0)), list(up.unbind(0))
        self.gathered = None

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        index = self.owner.index
        if index is None:  # not an engine pass: peft's forward, untouched
            return self.peft_forward(x, *args, **kwargs)
        kwargs.pop("adapter_names", None)  # from peft's own hooks, if a caller set any
        base = self.module.base_layer
        if self.plain_linear and not args and not kwargs:
            result = F.linear(x, base.weight, base.bias)
        else:
            result = base(x, *args, **kwargs)
        if not self.owner.any_adapter:
            return result
        h = x.reshape(x.shape[0], -1, x.shape[-1])
        if h.dtype != self.down.dtype:  # peft computes LoRA in the adapter weights' dtype
            h = h.to(self.down.dtype)
        uniform = self.owner.uniform
        if uniform is not None:  # one slot for every row: plain matmuls, no gather
            delta = (h @ self.down_slots[uniform]) @ self.up_slots[uniform]
        else:
            down, up = self._rows(index)
            delta = torch.bmm(torch.bmm(h, down), up)
        if delta.dtype != result.dtype:
            delta = delta.to(result.dtype)
        return result + delta.view(result.shape)

    def _rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's A and B (rows × in × rank, rows × rank × out)."""
        if self.gathered is not None and self.gathered[0] is index:
            return self.gathered[1], self.gathered[2]
        down, up = self.down.index_select(0, index), self.up.index_select(0, index)
        self.gathered = (index, down, up) if self.owner.keep_gathered else None
        return down, up


class BatchedLora:
    """Which LoRA layers compute mixed batches batched, their stacks, and the rows' slots."""

    def __init__(self, *, gather_budget: int = GATHER_BUDGET) -> None:
        self.gather_budget = gather_budget
        self.keep_gathered = False  # whether the layers keep the rows' gathered weights
        self.slots: dict[str, int] = {}  # internal adapter name -> slot (1..)
        self.layers: dict[int, StackedLayer] = {}  # id(module) -> its stacks, patched layers
        self.fallback: list[Any] = []  # LoRA layers left to peft's mixed-batch code
        self.peft_routed: list[Any] = []  # modules that need peft's adapter_names: those and
        # modules_to_save wrappers
        self.index: torch.Tensor | None = None  # slot per row of the current pass
        self.uniform: int | None = None  # the slot when every row has the same one
        self.any_adapter = False
        self._key: tuple[str, ...] | None = None  # the names ``_index`` was made for
        self._index = torch.zeros(0, dtype=torch.long)
        self._row_bytes = 0  # gathered weight bytes per row, over every patched layer

    def rebuild(self, model: Any, adapters: Sequence[str]) -> None:
        """Re-stack every LoRA layer of ``model`` for ``adapters`` (after a load or unload)."""
        from peft.tuners.lora import LoraLayer
        from peft.utils.other import AuxiliaryTrainingWrapper

        self.slots = {name: slot for slot, name in enumerate(sorted(adapters), start=1)}
        self._key = None  # slots moved: the next pass makes its index (and gathers) anew
        self.fallback = []
        seen: set[int] = set()
        for module in model.modules():
            if not isinstance(module, LoraLayer):
                continue
            if not held(module) & self.slots.keys():
                # holds no loaded adapter (only unloaded ones): its forward adds nothing
                self._unpatch(module)
                continue
            if not batchable(module, self.slots):
                self._unpatch(module)
                self.fallback.append(module)
                continue
            self._patch(module).restack(self.slots)
            seen.add(id(module))
        for key in set(self.layers) - seen:  # layers peft dropped
            self._unpatch(self.layers[key].module)
        wrappers = [m for m in model.modules() if isinstance(m, AuxiliaryTrainingWrapper)]
        self.peft_routed = [*self.fallback, *wrappers]
        self._row_bytes = sum(
            layer.row_elements * layer.down.element_size() for layer in self.layers.values()
        )

    def _patch(self, module: Any) -> StackedLayer:
        """``module``'s stacks; its forward is theirs from now on."""
        layer = self.layers.get(id(module))
        if layer is None:
            layer = StackedLayer(self, module)
            module.forward = layer.forward  # an instance attribute: hooks still run
            self.layers[id(module)] = layer
        return layer

    def _unpatch(self, module: Any) -> None:
        layer = self.layers.pop(id(module), None)
        if layer is not None and "forward" in vars(module):
            del module.forward  # back to the class's (peft's) forward

    def route(self, names: Sequence[str] | None, device: torch.device) -> None:
        """Set the rows' adapters for the next pass (None: not an engine pass)."""
        if names is None:
            self.index = None
            return
        key = tuple(names)
        if key != self._key:  # the batch changed: decode steps in between reuse the index
            slots = [self.slots.get(name, NO_ADAPTER) for name in names]
            self._index = torch.tensor(slots, dtype=torch.long, device=device)
            distinct = set(slots)
            self.uniform = slots[0] if len(distinct) == 1 else None
            self.any_adapter = distinct != {NO_ADAPTER}
            self.keep_gathered = len(slots) * self._row_bytes <= self.gather_budget
            self._key = key
        self.index = self._index

    def end_pass(self) -> None:
        self.index = None


def held(module: Any) -> set[str]:
    """The adapters a LoRA layer holds weights of (in any of peft's weight dicts)."""
    names: set[str] = set()
    for attribute in module.adapter_layer_names:
        names.update(getattr(module, attribute, {}).keys())
    return names


def batchable(module: Any, slots: dict[str, int]) -> bool:
    """Whether the stacked path computes exactly what peft's mixed batch does for ``module``."""
    from peft.tuners.lora import Linear

    if type(module) is not Linear or not isinstance(module.base_layer, nn.Linear):
        return False
    if module.fan_in_fan_out or module.merged or module.disable_adapters:
        return False
    names = [name for name in module.lora_A if name in slots]
    if any(name in module.lora_variant or module.lora_bias.get(name) for name in names):
        return False
    if any(not isinstance(module.lora_B[name], nn.Linear) for name in names):
        return False
    return len({module.lora_A[name].weight.dtype for name in names}) <= 1

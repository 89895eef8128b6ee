"""The base model, its tokenizer, and the LoRA adapters loaded onto it, for one process.

:class:`ModelRunner` is confined to the engine's compute thread: it loads the base once, adds
and removes adapters under internal names (peft module keys cannot hold the dots and slashes
of public model names), and runs forward passes in which every row names its own adapter
(``"__base__"`` for the bare base model): plain LoRA linears compute every row's delta at once
(:mod:`engine.lora`), other LoRA layers run peft's mixed-batch inference.

Loading reuses :mod:`trainer.modeling` so a model is found (folder, hub cache, hub) and its
tokenizer completed (pad token, fallback chat template) exactly as it was for training.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import AdapterLoadError, BaseModelLoadError
from engine.lora import BatchedLora

logger = logging.getLogger(__name__)
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class AdapterFiles:
    """Where an adapter's weights are, and the chat template it was trained with (if saved)."""

    path: Path
    chat_template: str | None


def find_adapter(path: str | Path) -> AdapterFiles:
    """The adapter in ``path`` or in the ``adapter/`` folder a training run leaves there."""
    folder = Path(path)
    for candidate in (folder, folder / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return AdapterFiles(candidate, read_chat_template(candidate))
    raise AdapterLoadError(
        f"{folder} holds no adapter (no adapter_config.json); give the folder a training run "
        "wrote, or its adapter/ subfolder"
    )


def read_chat_template(folder: Path) -> str | None:
    """The chat template saved next to an adapter by its tokenizer, if any."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text()).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def check_adapter_config(folder: Path) -> None:
    """Refuse adapter kinds that cannot share a mixed batch."""
    config = json.loads((folder / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise AdapterLoadError(
            f"{folder} is a {config.get('peft_type')} adapter; only LoRA is served"
        )
    if config.get("use_dora"):
        raise AdapterLoadError(f"{folder} is a DoRA adapter; peft cannot batch DoRA with others")


class AdapterRouting:
    """Tells the layers left to peft's mixed-batch code which adapter each row uses.

    peft's mixed-batch inference hands ``adapter_names`` to each LoRA layer through forward
    pre-hooks that ``PeftModel.forward`` registers, after scanning every module, on every call;
    at one decode step per token that scan costs more than a small model's forward. These
    hooks are registered once per layer and read the names of the current pass, so the layers
    run the same mixed-batch code (``LoraLayer._mixed_batch_forward``) without the scan. Only
    the layers :mod:`engine.lora` cannot batch (and modules_to_save wrappers) are hooked.
    """

    def __init__(self) -> None:
        self.names: list[str] | None = None
        self._handles: dict[int, Any] = {}  # id(module) -> its hook's handle

    @property
    def hooked(self) -> int:
        """How many modules are hooked."""
        return len(self._handles)

    def attach(self, modules: list[Any]) -> None:
        """Hook exactly ``modules``: hook those not hooked yet, unhook the others."""
        wanted = {id(module): module for module in modules}
        for key in set(self._handles) - set(wanted):
            self._handles.pop(key).remove()
        for key, module in wanted.items():
            if key not in self._handles:
                self._handles[key] = module.register_forward_pre_hook(
                    self._inject, with_kwargs=True
                )

    def _inject(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.names is not None:
            kwargs["adapter_names"] = self.names
        return args, kwargs


class ModelRunner:
    """One base model with any number of LoRA adapters. Use from a single thread."""

    def __init__(self, model: Any, tokenizer: Any, *, max_context: int):
        self.model = model  # the base model, or the PeftModel wrapping it once an adapter loads
        self.base = model  # peft injects LoRA layers into this very module tree
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.device = next(model.parameters()).device
        self.pad_id = int(tokenizer.pad_token_id)
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.adapters: set[str] = set()  # internal names of loaded adapters
        self.routing = AdapterRouting()
        self.lora = BatchedLora()  # stacked LoRA weights: mixed batches without peft's loop

    @classmethod
    def load(cls, base: str, *, max_model_len: int | None = None) -> ModelRunner:
        """Load the base model and tokenizer (bf16 on a GPU, fp32 on CPU), in eval mode."""
        from trainer.errors import TrainingError
        from trainer.modeling import (
            context_length,
            load_model_config,
            load_tokenizer,
            pick_hardware,
            resolve_base,
        )

        try:
            source = resolve_base(base)
            check_architecture(load_model_config(source))
            hardware = pick_hardware("auto")
            tokenizer = load_tokenizer(source)
            model = load_weights(source.name, hardware.dtype, local_only=source.local_only)
        except TrainingError as error:
            raise BaseModelLoadError(str(error)) from error
        model.to(hardware.device).eval()
        limit = context_length(model.config) or 2048
        if max_model_len is not None and max_model_len > limit:
            raise BaseModelLoadError(
                f"max_model_len {max_model_len} is longer than the model's context of {limit}"
            )
        return cls(model, tokenizer, max_context=max_model_len or limit)

    def add_adapter(self, name: str, folder: Path) -> None:
        """Load the LoRA weights in ``folder`` as adapter ``name`` (an internal name).

        A failure leaves no trace: a half-added adapter would be active in every LoRA layer.
        """
        from trainer.modeling import quiet_peft

        check_adapter_config(folder)
        try:
            with quiet_peft():
                self._wrap(name, folder)
                self.model.load_adapter(str(folder), adapter_name=name)
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            # A shape mismatch (adapter for another base) is a RuntimeError from load_state_dict.
            self._discard(name)
            raise AdapterLoadError(f"cannot load the adapter in {folder}: {error}") from error
        self.model.eval()
        self.adapters.add(name)
        self._restack()

    def _wrap(self, name: str, folder: Path) -> None:
        """Wrap the base in a PeftModel holding an empty adapter ``name`` (first adapter only)."""
        from peft import PeftConfig, PeftModel, get_peft_model

        if not isinstance(self.model, PeftModel):
            config = PeftConfig.from_pretrained(str(folder))
            config.inference_mode = True
            with warnings.catch_warnings():  # base paths differ between machines; shapes decide
                warnings.filterwarnings("ignore", ".*base_model_name_or_path", UserWarning)
                self.model = get_peft_model(self.model, config, adapter_name=name)

    def _discard(self, name: str) -> None:
        # Which adapter peft calls "active" means nothing here: rows name their own.
        if name in getattr(self.model, "peft_config", {}):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Adapter .* was active", UserWarning)
                self.model.delete_adapter(name)

    def remove_adapter(self, name: str) -> None:
        """Free adapter ``name``'s weights."""
        if name in self.adapters:
            self._discard(name)
            self.adapters.discard(name)
            self._restack()

    def _restack(self) -> None:
        """Stack the loaded adapters' LoRA weights; hook the layers left to peft."""
        self.lora.rebuild(self.model, sorted(self.adapters))
        self.routing.attach(self.lora.peft_routed)

    def logits(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
        adapters: list[str],
    ) -> torch.Tensor:
        """Last-position logits (rows × vocabulary); ``cache`` grows by the new positions."""
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "cache": cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        # The transformers model itself, LoRA layers inside, not PeftModel.forward: see
        # AdapterRouting. Once every adapter is removed its layers compute the bare base.
        # Plain LoRA linears add every row's delta in one gathered matmul (engine.lora); the
        # routing hooks hand the names to the layers left to peft's mixed-batch code.
        names = adapters if self.adapters else None
        self.routing.names = names if self.routing.hooked else None
        self.lora.route(names, self.device)
        try:
            return self.base(**kwargs).logits[:, -1, :]
        finally:
            self.routing.names = None
            self.lora.end_pass()


def check_architecture(config: Any) -> None:
    """Refuse models whose cache cannot be left-padded and merged (sliding or linear layers)."""
    text = config.get_text_config(decoder=True)
    if getattr(config, "is_encoder_decoder", False):
        raise BaseModelLoadError("encoder-decoder models are not served; use a decoder-only model")
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        raise BaseModelLoadError(
            f"this model has {', '.join(sorted(kinds - {'full_attention'}))} layers; the engine "
            "batches full-attention decoders only (Llama, Qwen, Mistral without sliding window)"
        )


def load_weights(name: str, dtype: torch.dtype, *, local_only: bool) -> Any:
    """The causal LM, with load errors explained."""
    from transformers import AutoModelForCausalLM

    from trainer.modeling import explain_load_error

    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as error:
        raise BaseModelLoadError(str(explain_load_error(name, error))) from error


def eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every token that ends an answer: the tokenizer's EOS and the generation config's."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return frozenset(int(i) for i in ids if i is not None)

"""Base models a creator can fine-tune: what they are, how big, under which license, and where
LoRA attaches to them.

Imports without torch (the web process lists these entries in its form). Any other hub id or
local folder works too: :func:`resolve_target_modules` then scans the model's Linear layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Attention and MLP projections: LoRA on all of them learns new facts better than q/v alone
# (QLoRA paper, section 4) at a small cost in adapter size.
LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PHI3_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
TINY_KEY = "tiny"


@dataclass(frozen=True)
class BaseModelEntry:
    """One base model the form offers."""

    key: str
    name: str
    hub_id: str | None  # None: a local model built on this machine (the tiny one)
    family: str  # transformers model_type
    parameters_b: float  # billions of parameters
    license: str
    context_length: int
    has_chat_template: bool  # False: the trainer applies a plain ChatML template
    target_modules: tuple[str, ...]
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the UI and the API."""
        return {
            "key": self.key,
            "name": self.name,
            "hub_id": self.hub_id,
            "family": self.family,
            "parameters_b": self.parameters_b,
            "license": self.license,
            "context_length": self.context_length,
            "has_chat_template": self.has_chat_template,
            "target_modules": list(self.target_modules),
            "notes": self.notes,
        }


def _entry(
    key: str,
    name: str,
    hub_id: str | None,
    family: str,
    size: float,
    license: str,
    context: int,
    template: bool = True,
    notes: str = "",
) -> BaseModelEntry:
    targets = PHI3_TARGETS if family == "phi3" else LLAMA_STYLE_TARGETS
    return BaseModelEntry(
        key, name, hub_id, family, size, license, context, template, targets, notes
    )


LLAMA_LICENSE = "Llama Community License (acceptable use policy; gated on the hub)"
GEMMA_LICENSE = "Gemma Terms of Use (gated on the hub)"
# Each row: key, display name, hub id, model_type, billions of parameters, license, context length.
ENTRIES: tuple[BaseModelEntry, ...] = (
    _entry(
        TINY_KEY,
        "Tiny local Llama (demo, tests)",
        None,
        "llama",
        0.0001,
        "Apache-2.0",
        1024,
        notes="random weights: proves the pipeline, learns only what you teach it",
    ),
    _entry(
        "llama-3.2-1b-instruct",
        "Llama 3.2 1B Instruct",
        "meta-llama/Llama-3.2-1B-Instruct",
        "llama",
        1.24,
        LLAMA_LICENSE,
        131072,
    ),
    _entry(
        "llama-3.2-3b-instruct",
        "Llama 3.2 3B Instruct",
        "meta-llama/Llama-3.2-3B-Instruct",
        "llama",
        3.21,
        LLAMA_LICENSE,
        131072,
    ),
    _entry(
        "llama-3.1-8b-instruct",
        "Llama 3.1 8B Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "llama",
        8.03,
        LLAMA_LICENSE,
        131072,
    ),
    _entry(
        "llama-3.2-1b",
        "Llama 3.2 1B (base)",
        "meta-llama/Llama-3.2-1B",
        "llama",
        1.24,
        LLAMA_LICENSE,
        131072,
        template=False,
    ),
    _entry(
        "mistral-7b-instruct-v0.3",
        "Mistral 7B Instruct v0.3",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistral",
        7.25,
        "Apache-2.0",
        32768,
        notes="the chat template has no system role before v0.3",
    ),
    _entry(
        "qwen2.5-0.5b-instruct",
        "Qwen2.5 0.5B Instruct",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "qwen2",
        0.49,
        "Apache-2.0",
        32768,
    ),
    _entry(
        "qwen2.5-1.5b-instruct",
        "Qwen2.5 1.5B Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "qwen2",
        1.54,
        "Apache-2.0",
        32768,
    ),
    _entry(
        "qwen2.5-7b-instruct",
        "Qwen2.5 7B Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
        "qwen2",
        7.62,
        "Apache-2.0",
        32768,
    ),
    _entry(
        "gemma-2-2b-it",
        "Gemma 2 2B IT",
        "google/gemma-2-2b-it",
        "gemma2",
        2.61,
        GEMMA_LICENSE,
        8192,
        notes="no system role: put instructions in the first user turn",
    ),
    _entry(
        "gemma-2-9b-it",
        "Gemma 2 9B IT",
        "google/gemma-2-9b-it",
        "gemma2",
        9.24,
        GEMMA_LICENSE,
        8192,
        notes="no system role: put instructions in the first user turn",
    ),
    _entry(
        "phi-3.5-mini-instruct",
        "Phi-3.5 mini Instruct",
        "microsoft/Phi-3.5-mini-instruct",
        "phi3",
        3.82,
        "MIT",
        131072,
    ),
    _entry("phi-4", "Phi-4 (14B)", "microsoft/phi-4", "phi3", 14.7, "MIT", 16384),
)
_DEFAULT_TARGETS_BY_FAMILY = {entry.family: entry.target_modules for entry in ENTRIES}


def get_entry(name: str) -> BaseModelEntry | None:
    """The entry whose key or hub id is ``name`` (case-insensitive), or None."""
    wanted = name.strip().lower()
    for entry in ENTRIES:
        if wanted in (entry.key, (entry.hub_id or "").lower()):
            return entry
    return None


def default_target_modules(model_type: str) -> tuple[str, ...] | None:
    """LoRA targets known for a transformers ``model_type``, or None when unknown."""
    return _DEFAULT_TARGETS_BY_FAMILY.get(model_type)


def scan_linear_names(model: Any) -> tuple[str, ...]:
    """Leaf names of every Linear layer (quantized ones included) except the output head."""
    import torch

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names: set[str] = set()
    for qualified, module in model.named_modules():
        # bitsandbytes' Linear4bit/Linear8bitLt subclass torch.nn.Linear, so they count.
        if isinstance(module, torch.nn.Linear) and module is not output:
            names.add(qualified.rsplit(".", 1)[-1])
    names.discard("lm_head")
    return tuple(sorted(names))


def resolve_target_modules(model: Any, requested: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The module names LoRA should wrap in ``model``.

    ``requested`` wins when given (each name must exist). Otherwise the registry default for the
    model's family, keeping only names present; otherwise every Linear layer but the head.
    """
    present = set(scan_linear_names(model))
    if requested:
        missing = sorted(set(requested) - present)
        if missing:
            from trainer.errors import ConfigError

            raise ConfigError(
                f"target modules {missing} are not Linear layers of this model; "
                f"choose from {sorted(present)} or leave target_modules empty"
            )
        return tuple(requested)
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    known = default_target_modules(model_type) or ()
    chosen = tuple(name for name in known if name in present)
    return chosen or tuple(sorted(present))

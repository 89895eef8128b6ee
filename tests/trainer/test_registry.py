"""The base model registry and LoRA target resolution."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from trainer.errors import ConfigError
from trainer.registry import (
    ENTRIES,
    LLAMA_STYLE_TARGETS,
    PHI3_TARGETS,
    default_target_modules,
    get_entry,
    resolve_target_modules,
)


def test_entries_cover_the_families() -> None:
    families = {entry.family for entry in ENTRIES}
    assert {"llama", "mistral", "qwen2", "gemma2", "phi3"} <= families
    keys = [entry.key for entry in ENTRIES]
    assert len(keys) == len(set(keys))
    for entry in ENTRIES:
        assert entry.context_length >= 1024 and entry.license and entry.target_modules
        assert entry.to_dict()["key"] == entry.key


def test_lookup_by_key_or_hub_id() -> None:
    assert get_entry("qwen/qwen2.5-0.5b-instruct") is get_entry("qwen2.5-0.5b-instruct")
    assert get_entry("tiny") is not None and get_entry("tiny").hub_id is None  # type: ignore[union-attr]
    assert get_entry("someone/else") is None
    assert default_target_modules("phi3") == PHI3_TARGETS
    assert default_target_modules("unknown") is None


def test_llama_targets_all_projections(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert resolve_target_modules(model) == LLAMA_STYLE_TARGETS
    assert resolve_target_modules(model, ("q_proj",)) == ("q_proj",)
    with pytest.raises(ConfigError, match=r"\['qkv_proj'\] are not Linear layers"):
        resolve_target_modules(model, ("qkv_proj",))


def test_unknown_architecture_falls_back_to_linear_layers() -> None:
    import torch

    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = SimpleNamespace(model_type="odd")
            self.block = torch.nn.ModuleDict(
                {"mixer": torch.nn.Linear(4, 4), "norm": torch.nn.LayerNorm(4)}
            )
            self.lm_head = torch.nn.Linear(4, 8)

    assert resolve_target_modules(Odd()) == ("mixer",)

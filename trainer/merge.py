"""Merge a LoRA adapter into its base model and export a standalone model folder.

The base is loaded unquantized even for QLoRA adapters: folding the update into 4-bit weights
would round most of it away. The result loads with ``AutoModelForCausalLM.from_pretrained`` and
needs neither peft nor the adapter. Written to a hidden folder and renamed into place.
"""

from __future__ import annotations

from pathlib import Path

from trainer import checkpoint as ckpt
from trainer.errors import ConfigError
from trainer.modeling import find_adapter_dir, load_tuned


def merge_adapter(
    adapter: str | Path, output_dir: str | Path, *, base_model: str | None = None
) -> Path:
    """Write base + adapter, merged, to ``output_dir`` (which must not exist yet)."""
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise ConfigError(f"{output} is not empty; choose a new folder for the merged model")
    adapter_dir = find_adapter_dir(adapter)
    model, tokenizer, _ = load_tuned(adapter_dir, base_model=base_model, method="lora")
    merged = model.merge_and_unload()
    merged.config.use_cache = True  # training switched it off; generation wants it
    temp = ckpt.temp_folder(output.parent, output.name)
    merged.save_pretrained(temp)
    tokenizer.save_pretrained(temp)
    if output.exists():
        output.rmdir()  # empty (checked above); os.replace needs the name free
    return ckpt.publish(temp, output)

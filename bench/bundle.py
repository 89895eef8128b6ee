"""What an export bundle costs, step by step, against copying the merged weights once.

Run from the repository root (``PYTHONPATH=.`` or after ``make install``):
``.venv/bin/python bench/bundle.py [--hidden 512 --layers 8]``

A random-init Llama (byte-level BPE tokenizer of the tiny model, fp32) gets a LoRA adapter with
random weights (rank 8 on every projection); the bundle's steps are timed as the export job runs
them (merge, GGUF write, GGUF read-back and compare, checksums, tar) and the import's checksum
pass, each printed as a multiple of the named baseline: ``shutil.copyfile`` of the base model's
``model.safetensors`` (best of three; what any export must at least do once). One torch thread;
the machine is shared and its disk cache warm or not, so read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def _model(folder: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.tiny import train_tokenizer

    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers, num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 128,
        max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    base = LlamaForCausalLM(config)
    base_dir, adapter_dir = folder / "base", folder / "adapter"
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    lora = LoraConfig(
        r=8, lora_alpha=16, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"],
    )  # fmt: skip
    get_peft_model(base, lora).save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)  # as training leaves it beside the adapter
    return base_dir, adapter_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    import torch

    from gptstudio.services.bundle import file_table
    from trainer import bundle
    from trainer.merge import merge_adapter

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        base_dir, adapter_dir = _model(root, args.hidden, args.layers)
        out = root / "bundle"
        out.mkdir()
        weights = base_dir / "model.safetensors"
        size = weights.stat().st_size
        rows: list[tuple[str, float]] = []
        copy_s = min(
            _timed(lambda: shutil.copyfile(weights, root / "copy.safetensors"))[0] for _ in range(3)
        )
        merged = out / "merged"
        seconds, _ = _timed(lambda: merge_adapter(adapter_dir, merged, base_model=str(base_dir)))
        rows.append(("merge adapter into base", seconds))
        seconds, _ = _timed(lambda: bundle.write_gguf(merged, out / "model.gguf", name="bench"))
        rows.append(("write GGUF", seconds))
        seconds, check = _timed(lambda: bundle.check_gguf(out / "model.gguf", merged))
        assert check.ok, check.mismatched
        rows.append(("read GGUF back, compare every tensor", seconds))
        rows.append(("checksums (export)", _timed(lambda: file_table(out))[0]))

        def pack() -> None:
            with tarfile.open(root / "bundle.tar", "w") as packed:
                packed.add(out, arcname="bundle")

        rows.append(("tar", _timed(pack)[0]))
        rows.append(("checksums (import)", _timed(lambda: file_table(out))[0]))
        total = sum(s for _, s in rows)
        print(
            f"model: hidden {args.hidden}, {args.layers} layers, {size / 2**20:.0f} MiB fp32; "
            f"bundle {(root / 'bundle.tar').stat().st_size / 2**20:.0f} MiB; "
            f"baseline shutil.copyfile of the weights: {copy_s:.2f} s"
        )
        print(f"{'step':<40}{'s':>8}{'x copy':>9}")
        for name, seconds in [*rows, ("whole export + import check", total)]:
            print(f"{name:<40}{seconds:>8.2f}{seconds / copy_s:>8.1f}x")


if __name__ == "__main__":
    main()

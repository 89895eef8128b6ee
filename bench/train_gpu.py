"""GPU training throughput of the project's LoRA step on a Llama-3.2-1B-shaped model (H200).

Run on a CUDA machine from the repository root (``PYTHONPATH=.``); nothing is downloaded::

    .venv/bin/python bench/train_gpu.py [--rows 8] [--row 4096] [--steps 10] [--rank 16]
        [--attention packed|sdpa] [--checkpointing]

It builds a random-init model with Llama 3.2 1B's shape (16 layers, hidden 2048, 32 query and
8 key/value heads, MLP 8192, vocabulary 128256, tied embeddings) in bf16, attaches LoRA to every
projection with ``trainer.modeling.add_lora``, and trains on synthetic examples of long-tailed
lengths packed by ``trainer.data.BatchPlan`` (best-fit rows of ``--row`` tokens, positions
restarting per example). Each step is the project's step: ``collate``, bf16 autocast,
``loss_sum`` on assistant tokens, AdamW. ``--attention packed`` (default) is the project's
per-example causal sdpa; ``sdpa`` is transformers' block-diagonal mask, the named baseline.

Prints non-pad tokens/s and MFU against the H200's dense bf16 peak (989 TFLOP/s). MFU counts
6N FLOPs per token plus attention (the usual convention for full fine-tuning), the vocabulary
projection only for target tokens (``loss_sum`` forms no other logits); LoRA skips the frozen
weights' gradients, so about 4N of those 6N are executed, and the "executed" figure is printed
too. Exits 1 with a message when no CUDA GPU is visible. ``--smoke`` runs a tiny shape
on the CPU, only to check that the script works. The Trainer and TRL baselines on the same
GPU: ``bench/train_throughput.py --device cuda``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

H200_BF16_PEAK = 989e12  # dense FLOP/s (H100/H200 SXM spec sheet)
SHAPE_1B = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
}
SHAPE_SMOKE = {
    **SHAPE_1B,
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def synthetic_examples(n: int, row: int, vocab: int, seed: int) -> list[Any]:
    """Examples of long-tailed length (most short, one in five long), assistant half labelled."""
    from trainer.data import IGNORE_INDEX, Example

    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        length = rng.randint(row // 8, row // 2) if rng.random() < 0.2 else rng.randint(32, 400)
        length = min(length, row)
        ids = tuple(rng.randrange(3, vocab) for _ in range(length))
        prompt = length // 2
        examples.append(Example(ids, (IGNORE_INDEX,) * prompt + ids[prompt:]))
    return examples


def build_model(args: Any, device: str, dtype: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainer.attention import use_packed_attention
    from trainer.config import JobConfig
    from trainer.modeling import add_lora

    torch.manual_seed(0)
    shape = SHAPE_SMOKE if args.smoke else SHAPE_1B
    config = LlamaConfig(**shape, attn_implementation="sdpa")
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.config.use_cache = False
    if args.attention == "packed":
        use_packed_attention(model)
    job = JobConfig(
        base_model="synthetic",
        rank=args.rank,
        alpha=2 * args.rank,
        dropout=0.0,
        gradient_checkpointing=args.checkpointing,
        sequence_length=args.row,
    )
    return add_lora(model, job), config


def flops_per_token(
    config: Any, n_params: int, effective_context: float, target_share: float
) -> tuple[float, float]:
    """(6N + attention, 4N + attention) FLOPs per trained token. ``loss_sum`` forms logits
    only at target positions, so the vocabulary projection (tied: the embedding's N) counts
    for ``target_share`` of the tokens, not all: no FLOPs are credited that were not run."""
    attention = 12 * config.num_hidden_layers * config.hidden_size * effective_context
    head = config.vocab_size * config.hidden_size
    effective = n_params - head + head * target_share
    return 6 * effective + attention, 4 * effective + attention


def run(args: Any) -> None:
    import torch

    from trainer.data import BatchPlan, collate
    from trainer.modeling import Hardware, autocast, loss_sum

    device = "cpu" if args.smoke else "cuda"
    dtype = torch.float32 if args.smoke else torch.bfloat16
    hardware = Hardware(device, dtype, "fp32" if args.smoke else "bf16")
    model, config = build_model(args, device, dtype)
    examples = synthetic_examples(args.rows * 12 * (args.steps + 3), args.row, config.vocab_size, 0)
    plan = BatchPlan(examples, capacity=args.row, batch_size=args.rows, seed=0)
    batches = plan.batches(0)[: args.steps + args.warmup]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = squares = targets = 0
    seconds = 0.0
    for index, rows in enumerate(batches):
        batch = collate([[examples[i] for i in row] for row in rows], pad_id=0).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with autocast(hardware):
            summed = loss_sum(model, batch)
        (summed / batch.targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= args.warmup:  # the first steps pay for kernel selection and allocation
            seconds += time.perf_counter() - started
            tokens += batch.tokens
            targets += batch.targets
            squares += sum(len(examples[i]) ** 2 for row in rows for i in row)
    report(args, model, config, (tokens, squares, targets), seconds)


def report(
    args: Any, model: Any, config: Any, counts: tuple[int, int, int], seconds: float
) -> None:
    import torch

    tokens, squares, targets = counts
    n_params = sum(p.numel() for p in model.parameters())
    conventional, executed = flops_per_token(
        config, n_params, squares / max(1, tokens), targets / max(1, tokens)
    )
    rate = tokens / seconds
    print(f"model: {n_params / 1e9:.2f}B parameters, LoRA rank {args.rank}, {args.attention}")
    print(f"rows: {args.rows} x {args.row} tokens, {args.steps} timed steps")
    print(f"throughput: {rate:,.0f} non-pad tokens/s")
    print(f"MFU (6N + attention): {rate * conventional / H200_BF16_PEAK:.1%}")
    print(f"executed-FLOP utilisation (4N + attention): {rate * executed / H200_BF16_PEAK:.1%}")
    if torch.cuda.is_available() and not args.smoke:
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="packed rows per step")
    parser.add_argument("--row", type=int, default=4096, help="tokens per packed row")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--attention", choices=("packed", "sdpa"), default="packed")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--smoke", action="store_true", help="tiny shape on CPU (script check)")
    args = parser.parse_args()

    import torch

    if args.smoke:
        args.rows, args.row, args.steps, args.warmup = 2, 256, 2, 1
    elif not torch.cuda.is_available():
        print(
            "bench/train_gpu.py needs a CUDA GPU (written for an H200) and none is visible; "
            "run it on a GPU worker, or pass --smoke to check the script on CPU",
            file=sys.stderr,
        )
        return 1
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark LoRA training throughput: the project's trainer against strong baselines, in one run.

Run from the repository root after ``make install`` and ``pip install -e .[dev]`` (TRL is a dev
extra), or with ``PYTHONPATH=.``::

    .venv/bin/python bench/train_throughput.py [--examples 128] [--threads 1] [--hidden 512]
        [--layers 4] [--only project,flatten]

Every side trains the same LoRA (rank 8, alpha 16, dropout 0.05, every projection, AdamW at
2e-4, cosine, one epoch) on the same base model for one epoch over the same chat examples,
tokenised the same way (chat template, loss on assistant tokens, truncated to ``--row``). Example
lengths are long-tailed like real curated data: most answers are a sentence or two, one in five
runs to a few hundred tokens. The base model is a random-init Llama with ``--hidden`` (512) and
``--layers`` (4), wide enough that the matrix products, not Python, take the time.

The sides:

* ``project``: ``trainer.launch.train`` (best-fit packing into rows of ``--row`` tokens,
  ``--rows-per-batch`` rows per step, per-example causal attention, logits only at target
  positions, and on CPU the kernels of ``trainer.kernels``: dropout that samples the dropped
  positions, one ``addmm`` for each adapter's up-projection);
* ``padded``: ``transformers.Trainer``, batches of ``--batch`` examples in random order, padded
  to the longest (attention mask, -100 labels on padding);
* ``grouped``: the same with ``train_sampling_strategy="group_by_length"`` (batches of similar
  lengths: little padding);
* ``flatten``: the same with ``DataCollatorWithFlattening`` (padding-free: a batch is one row,
  positions restart per example);
* ``trl-packing``: TRL's ``SFTTrainer`` with ``packing=True`` (best-fit rows of ``--row``
  tokens, padding-free), ``--rows-per-batch`` rows per step;
* ``trl-padding-free``: TRL's ``SFTTrainer`` with ``padding_free=True`` and ``--batch`` examples.

All are timed the same way: the wall time of the whole training call, from the chat records to a
trained adapter (tokenising, loading the model, training; not evaluating; every library is
imported before the first clock starts). Useful tokens are
counted alike: the non-pad tokens of the tokenised dataset, which every side trains on exactly
once. After training, every adapter's loss per assistant token on the same 32 held-out examples
is measured by the same function (one example at a time, no dropout), so a side that is faster
by training less shows up as a worse loss. Each side runs ``--repeats`` times and its best time
counts. Goal: the project at least 1.5x the strongest baseline in useful tokens/s at an equal
held-out loss (within 2%); exits 1 when missed.

``--device cuda`` runs every side on a GPU in bf16 (weights loaded in bf16, bf16 autocast, as the
project trains there), for the GPU host of ``bench/train_gpu.py``; use a larger ``--hidden``,
``--layers`` and ``--examples`` there. Not yet run on a GPU: none has been lent to these sessions.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOAL = 1.5
LOSS_TOLERANCE = 0.02
CORPUS = Path(__file__).resolve().parents[1] / "trainer" / "data" / "tiny_corpus.txt"
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LEARNING_RATE = 2e-4


@dataclass
class Outcome:
    name: str
    seconds: float
    held_out_loss: float


def make_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Chat examples with long-tailed answer lengths, made of words from the tiny corpus."""
    rng = random.Random(seed)
    words = CORPUS.read_text().split()

    def text(count: int) -> str:
        return " ".join(rng.choice(words) for _ in range(count))

    records = []
    for _ in range(n):
        answer_words = rng.randint(100, 250) if rng.random() < 0.2 else rng.randint(4, 30)
        messages = [
            {"role": "user", "content": text(rng.randint(6, 20)) + "?"},
            {"role": "assistant", "content": text(answer_words) + "."},
        ]
        records.append({"messages": messages})
    return records


def tokenized(model_dir: Path, records: list[dict[str, Any]], row: int) -> tuple[Any, list[Any]]:
    """The tokenizer and the examples, exactly as the project tokenises them."""
    from trainer.data import load_conversations, tokenize_all
    from trainer.modeling import BaseSource, load_tokenizer

    tokenizer = load_tokenizer(BaseSource(str(model_dir), local_only=True))
    examples, _ = tokenize_all(tokenizer, load_conversations(records), max_length=row)
    return tokenizer, examples


def useful_tokens(model_dir: Path, records: list[dict[str, Any]], row: int) -> int:
    return sum(len(e) for e in tokenized(model_dir, records, row)[1])


def held_out_loss(model: Any, examples: list[Any]) -> float:
    """Mean loss per assistant token, one example at a time (no padding, no packing)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.input_ids], device=model.device)
            labels = torch.tensor([example.labels], device=model.device)
            logits = model(input_ids=ids).logits[0, :-1].float()
            targets = labels[0, 1:]
            total += torch.nn.functional.cross_entropy(
                logits, targets, ignore_index=-100, reduction="sum"
            ).item()
            count += int((targets != -100).sum())
    return total / count


def lora_model(model_dir: Path, device: str) -> Any:
    """The baselines' model: on a GPU in bf16 with bf16 autocast, as the project runs there."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.modeling import quiet_peft

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation="sdpa", dtype=dtype
    ).to(device)
    with quiet_peft():
        return get_peft_model(
            model, LoraConfig(**LORA, target_modules=TARGETS, task_type="CAUSAL_LM")
        )


# --- the project -----------------------------------------------------------------------------


def run_project(model_dir: Path, records: list[dict[str, Any]], args: Any) -> tuple[float, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.config import JobConfig
    from trainer.launch import train

    config = JobConfig(
        base_model=str(model_dir), rank=LORA["r"], alpha=LORA["lora_alpha"],
        dropout=LORA["lora_dropout"], learning_rate=LEARNING_RATE, epochs=1,
        sequence_length=args.row, batch_size=args.rows_per_batch, eval_fraction=0.0,
        eval_interval=0, checkpoint_interval=0, warmup_ratio=0.0, lr_schedule="cosine",
        early_stopping_patience=0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as output:
        started = time.perf_counter()
        result = train(config, dataset=records, output_dir=Path(output) / "run")
        seconds = time.perf_counter() - started
        dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(args.device)
        model = PeftModel.from_pretrained(base, str(result.adapter_dir))
    return seconds, model


# --- transformers.Trainer ----------------------------------------------------------------------


def pad_to_longest(pad_id: int) -> Callable[[list[dict[str, list[int]]]], dict[str, Any]]:
    import torch

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        longest = max(len(f["input_ids"]) for f in batch)

        def padded(key: str, value: int) -> Any:
            return torch.tensor([f[key] + [value] * (longest - len(f[key])) for f in batch])

        mask = [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in batch]
        return {
            "input_ids": padded("input_ids", pad_id),
            "labels": padded("labels", -100),
            "attention_mask": torch.tensor(mask),
        }

    return collate


def run_trainer(
    model_dir: Path, records: list[dict[str, Any]], args: Any, *, variant: str
) -> tuple[float, Any]:
    from transformers import DataCollatorWithFlattening, Trainer, TrainingArguments

    started = time.perf_counter()
    tokenizer, examples = tokenized(model_dir, records, args.row)
    features = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]
    model = lora_model(model_dir, args.device)
    collator: Any = pad_to_longest(tokenizer.pad_token_id)
    if variant == "flatten":
        collator = DataCollatorWithFlattening(return_position_ids=True)
    with tempfile.TemporaryDirectory() as output:
        training_args = TrainingArguments(
            output_dir=output, per_device_train_batch_size=args.batch, num_train_epochs=1,
            learning_rate=LEARNING_RATE, lr_scheduler_type="cosine", save_strategy="no",
            logging_strategy="no", report_to="none", use_cpu=args.device == "cpu",
            bf16=args.device == "cuda", disable_tqdm=True, remove_unused_columns=False, seed=0,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if variant == "grouped" else "random",
        )  # fmt: skip
        trainer = Trainer(
            model=model, args=training_args, train_dataset=features, data_collator=collator
        )
        trainer.train()
    return time.perf_counter() - started, model


# --- TRL ---------------------------------------------------------------------------------------


def run_trl(
    model_dir: Path, records: list[dict[str, Any]], args: Any, *, variant: str
) -> tuple[float, Any]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    started = time.perf_counter()
    tokenizer, examples = tokenized(model_dir, records, args.row)
    rows = {
        "input_ids": [list(e.input_ids) for e in examples],
        "completion_mask": [[int(label != -100) for label in e.labels] for e in examples],
    }
    model = lora_model(model_dir, args.device)
    packing = variant == "trl-packing"
    with tempfile.TemporaryDirectory() as output:
        config = SFTConfig(
            output_dir=output, num_train_epochs=1, learning_rate=LEARNING_RATE,
            lr_scheduler_type="cosine", save_strategy="no", logging_strategy="no",
            report_to="none", use_cpu=args.device == "cpu", bf16=args.device == "cuda",
            disable_tqdm=True, seed=0,
            max_length=args.row if packing else None,  # examples come truncated to --row
            packing=packing, padding_free=not packing,
            per_device_train_batch_size=args.rows_per_batch if packing else args.batch,
            completion_only_loss=True, dataset_num_proc=None,
        )  # fmt: skip
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=Dataset.from_dict(rows),
            processing_class=tokenizer,
        )  # fmt: skip
        trainer.train()
    return time.perf_counter() - started, model


SIDES: dict[str, Callable[[Path, list[dict[str, Any]], Any], tuple[float, Any]]] = {
    "project": run_project,
    "padded": lambda m, r, a: run_trainer(m, r, a, variant="padded"),
    "grouped": lambda m, r, a: run_trainer(m, r, a, variant="grouped"),
    "flatten": lambda m, r, a: run_trainer(m, r, a, variant="flatten"),
    "trl-packing": lambda m, r, a: run_trl(m, r, a, variant="trl-packing"),
    "trl-padding-free": lambda m, r, a: run_trl(m, r, a, variant="trl-padding-free"),
}
LABELS = {
    "project": "project (packing)",
    "padded": "Trainer, padded to longest",
    "grouped": "Trainer, group_by_length",
    "flatten": "Trainer, DataCollatorWithFlattening",
    "trl-packing": "TRL SFTTrainer, packing (bfd)",
    "trl-padding-free": "TRL SFTTrainer, padding_free",
}


def measure(model_dir: Path, records: list[dict[str, Any]], held_out: list[Any], args: Any) -> Any:
    best: dict[str, Outcome] = {}
    for _ in range(args.repeats):  # interleaved, so a burst of load hits every side alike
        for name in args.only:
            seconds, model = SIDES[name](model_dir, records, args)
            if name not in best or seconds < best[name].seconds:
                best[name] = Outcome(name, seconds, held_out_loss(model, held_out))
    return best


def import_everything() -> None:
    """Import every side's libraries before any clock starts (peft alone imports bitsandbytes,
    seconds on a loaded machine): the first side to run would otherwise pay for all."""
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import transformers.trainer  # noqa: F401
    import trl  # noqa: F401

    import trainer.launch  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on every side")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size of the base model")
    parser.add_argument("--layers", type=int, default=4, help="layers of the base model")
    parser.add_argument("--row", type=int, default=512, help="packed row length (tokens)")
    parser.add_argument("--rows-per-batch", type=int, default=2, help="packed rows per step")
    parser.add_argument("--batch", type=int, default=8, help="examples per step, unpacked")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu",
        help="cuda: every side on the GPU in bf16 (bench/train_gpu.py's host)",
    )  # fmt: skip
    parser.add_argument("--only", default=",".join(SIDES), help="comma-separated sides to run")
    args = parser.parse_args()
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(SIDES))
    if unknown:
        parser.error(f"unknown sides {unknown}; choose from {sorted(SIDES)}")

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # every side on the CPU, the project included
    import torch
    from transformers.utils import logging as hf_logging

    from trainer.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    import_everything()
    records = make_records(args.examples, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_model(
            Path(folder) / "base", hidden_size=args.hidden, layers=args.layers
        )
        tokens = useful_tokens(model_dir, records, args.row)
        held_out = tokenized(model_dir, make_records(32, seed=1), args.row)[1]
        best = measure(model_dir, records, held_out, args)
    print(
        f"examples: {args.examples} ({tokens} useful tokens), hidden {args.hidden}, "
        f"{args.layers} layers, threads: {args.threads}, row: {args.row} tokens"
    )
    print(f"{'side':38} {'wall s':>8} {'tokens/s':>10} {'held-out loss':>14} {'project is':>11}")
    project = best.get("project")
    for name, outcome in best.items():
        ratio = f"{outcome.seconds / project.seconds:10.2f}x" if project else ""
        print(
            f"{LABELS[name]:38} {outcome.seconds:8.1f} {tokens / outcome.seconds:10.0f} "
            f"{outcome.held_out_loss:14.4f} {ratio}"
        )
    baselines = [o for n, o in best.items() if n != "project"]
    if project is None or not baselines:
        return 0
    strongest = min(baselines, key=lambda o: o.seconds)
    ratio = strongest.seconds / project.seconds
    equal = math.isclose(project.held_out_loss, strongest.held_out_loss, rel_tol=LOSS_TOLERANCE)
    met = ratio >= GOAL and equal
    print(
        f"against the strongest baseline ({LABELS[strongest.name]}): {ratio:.2f}x useful "
        f"tokens/s, held-out loss {'equal' if equal else 'NOT equal'} (within "
        f"{LOSS_TOLERANCE:.0%}); goal >= {GOAL}x: {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

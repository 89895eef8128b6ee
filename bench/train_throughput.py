"""Benchmark LoRA training throughput: the project's trainer (packing) against a plain
``transformers.Trainer`` + peft baseline that pads each batch to its longest example.

Run from the repository root after ``make install`` (or with ``PYTHONPATH=.``)::

    .venv/bin/python bench/train_throughput.py [--examples 256] [--repeats 2] [--threads 1]

Both sides train the same LoRA (same rank, targets, learning rate) on the tiny local Llama
(built into a temporary folder) for one epoch over the same chat examples, tokenised the same
way (chat template, loss on assistant tokens). Example lengths are long-tailed like real
curated data: most answers are a sentence or two, one in five runs to a few hundred tokens.

* project: ``trainer.launch.train`` with packing (best-fit rows of ``--row`` tokens, positions
  restarting per example so no example attends to another);
* baseline: ``transformers.Trainer`` with a collator that pads every batch of ``--batch``
  examples to its longest example (attention mask, -100 labels on padding).

Useful throughput counts non-pad tokens only, per second of training loop (model loading
excluded on both sides). Each side runs ``--repeats`` times and its best run counts, so a burst
of load from other processes on a shared machine does not decide the ratio. Torch runs on
``--threads`` threads on both sides. Both take about ten examples per optimizer step (two
packed rows of 512 tokens; eight padded examples, the ``Trainer`` default batch size), so the
training dynamics match. Target: ratio >= 2.5 on CPU; exits 1 when missed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET = 2.5
CORPUS = Path(__file__).resolve().parents[1] / "trainer" / "data" / "tiny_corpus.txt"


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


def project_throughput(model_dir: Path, records: list[dict[str, Any]], args: Any) -> float:
    """Non-pad tokens per second of the project's packed training loop."""
    from trainer.config import JobConfig
    from trainer.launch import train

    config = JobConfig(
        base_model=str(model_dir),
        rank=8,
        alpha=16,
        learning_rate=2e-4,
        epochs=1,
        sequence_length=args.row,
        batch_size=args.rows_per_batch,
        eval_fraction=0.0,
        eval_interval=0,
        checkpoint_interval=0,
        warmup_ratio=0.0,
    )
    with tempfile.TemporaryDirectory() as output:
        report = train(config, dataset=records, output_dir=Path(output) / "run").report
    return float(report["tokens_per_second"])


def baseline_throughput(model_dir: Path, records: list[dict[str, Any]], args: Any) -> float:
    """Non-pad tokens per second of transformers.Trainer with pad-to-longest batches."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from trainer.data import IGNORE_INDEX, load_conversations, tokenize_all
    from trainer.modeling import BaseSource, load_tokenizer, quiet_peft

    tokenizer = load_tokenizer(BaseSource(str(model_dir), local_only=True))
    examples, stats = tokenize_all(tokenizer, load_conversations(records), max_length=args.row)
    features = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]

    def pad_to_longest(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        longest = max(len(f["input_ids"]) for f in batch)

        def padded(key: str, value: int) -> Any:
            rows = [f[key] + [value] * (longest - len(f[key])) for f in batch]
            return torch.tensor(rows)

        mask = [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in batch]
        return {
            "input_ids": padded("input_ids", tokenizer.pad_token_id),
            "labels": padded("labels", IGNORE_INDEX),
            "attention_mask": torch.tensor(mask),
        }

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        task_type="CAUSAL_LM",
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    )
    with quiet_peft():
        model = get_peft_model(model, lora)
    with tempfile.TemporaryDirectory() as output:
        training_args = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=args.batch,
            num_train_epochs=1,
            learning_rate=2e-4,
            lr_scheduler_type="cosine",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            remove_unused_columns=False,
            seed=0,
        )
        trainer = Trainer(
            model=model, args=training_args, train_dataset=features, data_collator=pad_to_longest
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return stats.tokens / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--row", type=int, default=512, help="packed row length (tokens)")
    parser.add_argument("--rows-per-batch", type=int, default=2, help="packed rows per step")
    parser.add_argument("--batch", type=int, default=8, help="baseline examples per step")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from trainer.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    records = make_records(args.examples, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_model(Path(folder) / "tiny")
        project = baseline = 0.0
        for _ in range(args.repeats):  # interleaved, so a burst of load hits both sides alike
            project = max(project, project_throughput(model_dir, records, args))
            baseline = max(baseline, baseline_throughput(model_dir, records, args))
    ratio = project / baseline
    print(f"examples: {args.examples}, threads: {args.threads}, row: {args.row} tokens")
    print(f"project (packing):                {project:10.0f} useful tokens/s")
    print(f"baseline (Trainer, pad-longest):  {baseline:10.0f} useful tokens/s")
    print(f"ratio: {ratio:.2f}x (target >= {TARGET}x): {'met' if ratio >= TARGET else 'MISSED'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

"""Command line for the trainer: train, evaluate, merge.

    python -m trainer train --dataset data.jsonl --base PATH_OR_HUB_ID --output DIR
        [--preset quick|balanced|thorough] [--method lora|qlora-4bit|qlora-8bit]
        [--max-steps N] [--processes N] [--resume] [--eval-dataset FILE] [--set FIELD=VALUE ...]
    python -m trainer evaluate --adapter DIR --dataset test.jsonl [--report FILE]
    python -m trainer merge --adapter DIR --output DIR

``--set`` takes any :class:`trainer.config.JobConfig` field (``--set sequence_length=512``).
Without ``--preset`` the preset is chosen from the dataset size. SIGINT/SIGTERM stop training
after the current step with a checkpoint; ``--resume`` continues. ``--processes N`` trains
data-parallel on N processes (default: one per visible GPU, 1 on CPU; N > 1 on CPU uses gloo).
Exit status: 0 done, 2 refused input (the message says what to change), 3 cancelled, 4 gate not
passed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.config import METHODS, PRESETS, JobConfig, field_help, preset_for
from trainer.errors import TrainingError

EXIT_REFUSED, EXIT_CANCELLED, EXIT_GATE = 2, 3, 4


def parse_assignment(text: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` with VALUE read as JSON when it parses (numbers, booleans, lists)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return name.strip(), raw


def config_fields_help() -> str:
    """The ``--set`` fields, their defaults and help, for ``train --help``."""
    rows = [f"  {r['name']} (default {r['default']!r}): {r['help']}" for r in field_help()]
    return "fields for --set FIELD=VALUE:\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="fine-tune a base model on a chat JSONL dataset",
        epilog=config_fields_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--dataset", required=True, help="chat JSONL (one conversation a line)")
    train.add_argument("--base", required=True, help="hub id or local folder of the base model")
    train.add_argument("--output", required=True, help="run folder (checkpoints, adapter/)")
    train.add_argument("--preset", choices=PRESETS, help="default: chosen from the dataset size")
    train.add_argument("--method", choices=METHODS, default="lora")
    train.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument(
        "--processes",
        type=int,
        help="data-parallel processes (num_processes); default: one per GPU, 1 on CPU",
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--eval-dataset", help="validation JSONL (default: split or hold-out)")
    train.add_argument(
        "--set",
        type=parse_assignment,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any JobConfig field; repeatable",
    )
    train.add_argument("--log-every", type=int, default=10, help="print progress every N steps")
    evaluate = commands.add_parser("evaluate", help="base vs tuned on held-out conversations")
    evaluate.add_argument("--adapter", required=True, help="adapter folder (or the run folder)")
    evaluate.add_argument("--dataset", required=True, help="chat JSONL; its test split if any")
    evaluate.add_argument("--base", help="base model (default: the one it was trained on)")
    evaluate.add_argument("--max-new-tokens", type=int, default=64)
    evaluate.add_argument("--samples", type=int, default=5, help="rows in the answer table")
    evaluate.add_argument("--margin", type=float, default=0.05, help="required perplexity gain")
    evaluate.add_argument("--report", help="also write the report as JSON here")
    evaluate.add_argument("--require-gain", action="store_true", help="exit 4 if the gate fails")
    merge = commands.add_parser("merge", help="merge an adapter into its base and export it")
    merge.add_argument("--adapter", required=True, help="adapter folder (or the run folder)")
    merge.add_argument("--output", required=True, help="new folder for the merged model")
    merge.add_argument("--base", help="base model (default: the one it was trained on)")
    return parser


def job_config(args: argparse.Namespace) -> JobConfig:
    """The preset (given, or chosen from the dataset size) with the flags on top."""
    from trainer.data import load_conversations

    overrides = dict(args.set)
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.processes is not None:
        overrides["num_processes"] = args.processes
    preset = args.preset
    if preset is None:
        training = [c for c in load_conversations(args.dataset) if c.split == "train"]
        preset = preset_for(len(training))
    return JobConfig.from_preset(preset, base_model=args.base, method=args.method, **overrides)


def stop_on_signals() -> list[bool]:
    """A flag that SIGINT/SIGTERM raise; training checks it between steps."""
    flag: list[bool] = []

    def handle(signum: int, _frame: Any) -> None:
        print(f"signal {signum}: stopping after this step", file=sys.stderr)
        flag.append(True)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return flag


def run_train(args: argparse.Namespace) -> int:
    from trainer.launch import train

    config = job_config(args)
    print(f"preset {config.preset}, method {config.method}; config: {config.to_json()}")
    stop = stop_on_signals()

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "step" and event["step"] % max(1, args.log_every):
            return
        print(json.dumps({k: v for k, v in event.items() if v is not None}), flush=True)

    result = train(
        config,
        dataset=args.dataset,
        output_dir=args.output,
        eval_dataset=args.eval_dataset,
        resume=args.resume,
        on_progress=progress,
        should_stop=lambda: bool(stop),
    )
    if result.status == "cancelled":
        print(f"cancelled at step {result.report['steps']}; continue with --resume")
        return EXIT_CANCELLED
    print(f"{result.status}: final loss {result.final_loss:.4f}, adapter in {result.adapter_dir}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate, format_table

    report = evaluate(
        args.adapter,
        args.dataset,
        base_model=args.base,
        max_new_tokens=args.max_new_tokens,
        n_samples=args.samples,
        margin=args.margin,
    )
    print(report.gate.message)
    for name, qa in (("base", report.base_qa), ("tuned", report.tuned_qa)):
        print(f"{name}: exact match {qa.exact_match:.1%}, token F1 {qa.f1:.1%} ({qa.n} questions)")
    print(format_table(report.samples))
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=2))
    return EXIT_GATE if args.require_gain and not report.gate.passed else 0


def run_merge(args: argparse.Namespace) -> int:
    from trainer.merge import merge_adapter

    print(f"merged model in {merge_adapter(args.adapter, args.output, base_model=args.base)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": run_train, "evaluate": run_evaluate, "merge": run_merge}
    try:
        return handlers[args.command](args)
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())

"""A run killed with SIGKILL and restarted with --resume ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainer.checkpoint import list_checkpoints
from trainer.train import ADAPTER_DIR, CHECKPOINTS_DIR, REPORT_FILE

ROOT = Path(__file__).resolve().parents[2]
STEPS = 60


def cli_args(dataset: Path, base: Path, output: Path) -> list[str]:
    settings = {
        "sequence_length": 128,
        "batch_size": 2,
        "learning_rate": 0.01,
        "dropout": 0.1,  # dropout draws random numbers: resuming must restore the RNG too
        "checkpoint_interval": 5,
        "eval_interval": 0,
    }
    args = ["train", "--dataset", str(dataset), "--base", str(base), "--output", str(output)]
    args += ["--preset", "quick", "--max-steps", str(STEPS)]
    for name, value in settings.items():
        args += ["--set", f"{name}={json.dumps(value)}"]
    return args


def trainer_process(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "trainer", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_checkpoint(process: subprocess.Popen[str], root: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not list_checkpoints(root):
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.communicate()[0] if process.poll() is not None else ""
            pytest.fail(f"no checkpoint appeared in {root}: {output[-2000:]}")
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(
    tiny_model: Path, facts_file: Path, tmp_path: Path
) -> None:
    from trainer.__main__ import build_parser, job_config
    from trainer.launch import train

    killed_dir = tmp_path / "killed"
    process = trainer_process(cli_args(facts_file, tiny_model, killed_dir))
    try:
        wait_for_checkpoint(process, killed_dir / CHECKPOINTS_DIR, timeout=240)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed_dir / ADAPTER_DIR).exists()

    # The uninterrupted reference, in this process, with the config the CLI builds.
    args = build_parser().parse_args(cli_args(facts_file, tiny_model, tmp_path / "reference"))
    reference = train(job_config(args), dataset=facts_file, output_dir=args.output)

    resumed = trainer_process([*cli_args(facts_file, tiny_model, killed_dir), "--resume"])
    output = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0, output[-3000:]
    report = json.loads((killed_dir / ADAPTER_DIR / REPORT_FILE).read_text())
    assert report["steps"] == STEPS and report["resumed_from_steps"]
    assert report["resumed_from_steps"][0] % 5 == 0
    assert reference.final_loss == pytest.approx(report["final_loss"], abs=1e-4)
    reference_losses = [row["loss"] for row in reference.report["losses"]]
    assert [row["loss"] for row in report["losses"]] == pytest.approx(reference_losses, abs=1e-4)


@pytest.mark.parametrize(("method", "accumulation"), [("lora", 2), ("qlora-4bit", 1)])
def test_cancel_then_resume_in_process_matches(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path, method: str, accumulation: int
) -> None:
    from tests.trainer.conftest import small_config
    from trainer.launch import train

    config = small_config(
        tiny_model,
        method=method,
        max_steps=8,
        gradient_accumulation=accumulation,
        batch_size=1,
        dropout=0.1,
        checkpoint_interval=3,
        lr_schedule="cosine",
        warmup_ratio=0.2,
    )
    reference = train(config, dataset=facts, output_dir=tmp_path / "reference")
    steps: list[int] = []
    stopped = train(
        config,
        dataset=facts,
        output_dir=tmp_path / "run",
        on_progress=lambda e: e["event"] == "step" and steps.append(e["step"]),
        should_stop=lambda: len(steps) >= 5,
    )
    assert stopped.status == "cancelled" and stopped.report["steps"] == 5
    resumed = train(config, dataset=facts, output_dir=tmp_path / "run", resume=True)
    assert resumed.report["resumed_from_steps"] == [5]
    for key in ("loss", "learning_rate"):
        expected = [row[key] for row in reference.report["losses"]]
        assert [row[key] for row in resumed.report["losses"]] == pytest.approx(expected, abs=1e-5)

"""Data-parallel training on 2 CPU processes (gloo): the same code path a multi-GPU host runs.

Two processes with ``gradient_accumulation`` a train like one process with ``2 x a``; only rank 0
writes; cancel stops both ranks at the same step; a killed run resumes exactly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.trainer.conftest import small_config
from tests.trainer.test_resume import trainer_process, wait_for_checkpoint
from trainer.checkpoint import list_checkpoints
from trainer.errors import BaseModelError, CheckpointError, ConfigError, DeviceError
from trainer.launch import train
from trainer.train import ADAPTER_DIR, CHECKPOINTS_DIR, REPORT_FILE

STEPS = 8


def losses(report: dict[str, Any], key: str = "loss") -> list[float]:
    return [row[key] for row in report["losses"]]


def rank_processes() -> list[psutil.Process]:
    """Rank subprocesses of this test process still alive (none should outlive a run)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with_cmdline = child.cmdline() if child.is_running() else []
        if "trainer.distributed" in with_cmdline and child.status() != psutil.STATUS_ZOMBIE:
            found.append(child)
    return found


def test_num_processes_is_checked() -> None:
    with pytest.raises(ConfigError, match="num_processes -1 must be 0"):
        small_config("m", num_processes=-1)
    assert small_config("m").num_processes == 0  # auto: one per GPU, 1 on CPU


def test_process_count_follows_the_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import distributed

    monkeypatch.setattr(distributed, "visible_gpus", lambda: 2)
    assert distributed.resolve_processes(small_config("m"), tmp_path, resume=False) == 2
    one = small_config("m", num_processes=1)
    assert distributed.resolve_processes(one, tmp_path, resume=False) == 1
    with pytest.raises(DeviceError, match="num_processes 3 needs 3 GPUs and this host has 2"):
        distributed.resolve_processes(small_config("m", num_processes=3), tmp_path, resume=False)
    monkeypatch.setattr(distributed, "visible_gpus", lambda: 0)
    assert distributed.resolve_processes(small_config("m"), tmp_path, resume=False) == 1


@pytest.mark.slow
def test_a_rank_error_is_raised_as_in_one_process(
    tmp_path: Path, facts: list[dict[str, Any]]
) -> None:
    config = small_config(tmp_path / "no-such-model", num_processes=2)
    with pytest.raises(BaseModelError, match="does not exist; check the path"):
        train(config, dataset=facts, output_dir=tmp_path / "out")
    assert not rank_processes()


@pytest.mark.slow
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_two_processes_train_like_one_with_the_same_global_batch(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path, dropout: float
) -> None:
    # Dropout too: each micro-batch draws its masks from (seed, step, index), on any rank.
    common = {"max_steps": STEPS, "batch_size": 1, "dropout": dropout, "eval_interval": 4}
    single = small_config(tiny_model, gradient_accumulation=2, num_processes=1, **common)
    double = small_config(tiny_model, gradient_accumulation=1, num_processes=2, **common)
    reference = train(single, dataset=facts, eval_dataset=facts[:3], output_dir=tmp_path / "one")
    events: list[dict[str, Any]] = []
    result = train(
        double,
        dataset=facts,
        eval_dataset=facts[:3],
        output_dir=tmp_path / "two",
        on_progress=events.append,
    )
    assert result.status == "completed" and result.report["processes"] == 2
    assert reference.report["processes"] == 1
    # Same rows per step in the same order: the same curve up to float summation order.
    assert losses(result.report) == pytest.approx(losses(reference.report), abs=1e-4)
    rates = losses(reference.report, "learning_rate")
    assert losses(result.report, "learning_rate") == pytest.approx(rates)
    evals = [row["eval_loss"] for row in reference.report["eval_losses"]]
    assert [row["eval_loss"] for row in result.report["eval_losses"]] == pytest.approx(
        evals, abs=1e-4
    )
    assert result.report["train_tokens"] == reference.report["train_tokens"]
    # One writer: one adapter, one report, progress once per step, no leftovers.
    assert events.pop(0)["event"] == "started"
    assert [e["step"] for e in events] == [*range(1, STEPS + 1), STEPS]
    assert events[-1]["event"] == "done"
    out = tmp_path / "two"
    assert sorted(p.name for p in out.iterdir()) == [ADAPTER_DIR, "job_config.json", REPORT_FILE]
    assert result.adapter_dir == out / ADAPTER_DIR
    assert (out / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    assert not rank_processes()


@pytest.mark.slow
def test_cancel_stops_both_ranks_and_resume_continues_exactly(
    tiny_model: Path, facts: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = small_config(
        tiny_model,
        num_processes=2,
        max_steps=STEPS,
        batch_size=1,
        dropout=0.1,  # every rank's dropout stream must be restored on resume
        checkpoint_interval=100,
        lr_schedule="cosine",
        warmup_ratio=0.2,
    )
    reference = train(config, dataset=facts, output_dir=tmp_path / "reference")
    steps: list[int] = []
    asked_at: list[float] = []

    def stop() -> bool:
        if len(steps) >= 3 and not asked_at:
            asked_at.append(time.monotonic())
        return bool(asked_at)

    stopped = train(
        config,
        dataset=facts,
        output_dir=tmp_path / "run",
        on_progress=lambda e: e["event"] == "step" and steps.append(e["step"]),
        should_stop=stop,
    )
    returned = time.monotonic()
    assert stopped.status == "cancelled" and stopped.adapter_dir is None
    assert 3 <= stopped.report["steps"] <= 5  # the ranks agree within a step or two
    assert returned - asked_at[0] < 60 and not rank_processes()
    # One checkpoint set, of the step both ranks stopped at, with every rank's RNG.
    checkpoints = list_checkpoints(tmp_path / "run" / CHECKPOINTS_DIR)
    assert [p.name for p in checkpoints] == [f"step-{stopped.report['steps']:08d}"]
    state = json.loads((checkpoints[0] / "state.json").read_text())
    assert state["processes"] == 2
    with pytest.raises(CheckpointError, match="written by a run with 2 training process"):
        train(
            config.replace(num_processes=1), dataset=facts, output_dir=tmp_path / "run", resume=True
        )

    resumed = train(config, dataset=facts, output_dir=tmp_path / "run", resume=True)
    assert resumed.report["resumed_from_steps"] == [stopped.report["steps"]]
    assert losses(resumed.report) == pytest.approx(losses(reference.report), abs=1e-5)
    assert not rank_processes()


@pytest.mark.slow
def test_sigkill_mid_run_kills_the_ranks_and_resume_finishes(
    tiny_model: Path, facts_file: Path, tmp_path: Path
) -> None:
    steps = 30
    settings = {
        "sequence_length": 128,
        "batch_size": 1,
        "learning_rate": 0.01,
        "dropout": 0.0,
        "checkpoint_interval": 3,
        "eval_interval": 0,
    }
    args = ["train", "--dataset", str(facts_file), "--base", str(tiny_model)]
    args += ["--preset", "quick", "--max-steps", str(steps), "--processes", "2"]
    for name, value in settings.items():
        args += ["--set", f"{name}={json.dumps(value)}"]
    killed = tmp_path / "killed"
    process = trainer_process([*args, "--output", str(killed)])
    try:
        wait_for_checkpoint(process, killed / CHECKPOINTS_DIR, timeout=240)
        ranks = psutil.Process(process.pid).children()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stdout.close()  # type: ignore[union-attr]
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(ranks) == 2
    _gone, alive = psutil.wait_procs(ranks, timeout=30)
    assert not alive, "a rank outlived the killed launcher"
    assert not (killed / ADAPTER_DIR).exists()

    resumed = trainer_process([*args, "--output", str(killed), "--resume"])
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output[-3000:]
    report = json.loads((killed / ADAPTER_DIR / REPORT_FILE).read_text())
    assert report["steps"] == steps and report["processes"] == 2
    assert report["resumed_from_steps"] and report["resumed_from_steps"][0] % 3 == 0
    # The same run in one process with twice the accumulation: the same curve.
    from trainer.__main__ import build_parser, job_config

    parsed = build_parser().parse_args(
        [*args, "--output", str(tmp_path / "one"), "--processes", "1"]
    )
    reference = train(
        job_config(parsed).replace(gradient_accumulation=2),
        dataset=facts_file,
        output_dir=parsed.output,
    )
    assert losses(report) == pytest.approx(losses(reference.report), abs=1e-4)


def test_a_rank_that_cannot_start_takes_the_started_ones_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 fails to start: rank 0 is killed at once, not left waiting in the rendezvous."""
    import subprocess
    import sys

    from trainer import distributed

    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        if started:
            raise OSError("no more processes")
        kwargs.pop("pass_fds", None)
        started.append(real([sys.executable, "-c", "import time; time.sleep(120)"], **kwargs))
        return started[0]

    monkeypatch.setattr(distributed.subprocess, "Popen", popen)
    with pytest.raises(OSError, match="no more processes"):
        distributed.Ranks(tmp_path / "spec.json", 2)
    assert len(started) == 1 and started[0].poll() is not None  # killed and reaped

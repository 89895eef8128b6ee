"""The training benchmarks run as a GPU host would run them, in one call each: the GPU script's
CPU smoke shape, and the baselines' script on a tiny shape (every side, the table, the verdict).
They measure nothing here; they keep the scripts working for the machine that does."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_train_gpu_smoke_runs_the_project_step_and_reports_mfu() -> None:
    done = run("bench/train_gpu.py", "--smoke")
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"throughput: [\d,]+ non-pad tokens/s", done.stdout), done.stdout
    assert "MFU (6N + attention)" in done.stdout


def test_train_throughput_runs_every_side_and_gives_a_verdict() -> None:
    done = run(
        "bench/train_throughput.py", "--examples", "24", "--hidden", "64", "--layers", "1",
        "--row", "256", "--batch", "4",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: the goal missed, said so
    for label in ("project (packing)", "WithFlattening", "TRL SFTTrainer, padding_free"):
        assert label in done.stdout, done.stdout
    assert re.search(r"against the strongest baseline .*: [\d.]+x useful tokens/s", done.stdout)

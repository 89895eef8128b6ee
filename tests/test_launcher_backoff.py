"""The launcher's restart policy on real child processes, with the clock under the test's hand:
a child that keeps dying quickly waits 1, 2, 4 … at most 30 s before each restart; one that
stayed up a minute starts counting from 1 s again; every death is a log line; ``stop`` ends every
child. (The launcher itself, killed engine and all: tests/test_supervision.py.)"""

from __future__ import annotations

import logging
import sys

import pytest

from gptstudio.run import Child, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def died(child: Child) -> None:
    assert child.process is not None
    child.process.wait(timeout=30)


def test_a_child_that_keeps_dying_waits_longer_each_time(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    crashing = Child("the crasher", [sys.executable, "-c", "raise SystemExit(3)"])
    steady = Child("the steady one", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor([crashing, steady], max_delay=4, clock=clock)
    caplog.set_level(logging.WARNING, logger="gptstudio.run")
    supervisor.start()
    delays = []
    try:
        for _ in range(4):
            died(crashing)
            first_pid = crashing.process.pid if crashing.process else 0
            supervisor.tend()
            assert crashing.restart_at is not None
            delays.append(crashing.restart_at - clock.now)
            clock.now = crashing.restart_at - 0.1
            supervisor.tend()  # not yet
            assert crashing.process is not None and crashing.process.pid == first_pid
            clock.now = crashing.restart_at
            supervisor.tend()  # started again
            assert crashing.restart_at is None and crashing.process.pid != first_pid
        assert delays == [1, 2, 4, 4]
        assert steady.alive and steady.quick_deaths == 0

        died(crashing)
        clock.now += 61  # it had stayed up longer than a minute: back to the first delay
        supervisor.tend()
        assert crashing.restart_at == clock.now + 1
        text = caplog.text
        assert "the crasher (pid" in text and "exited with code 3" in text
        assert "restarting it in 1 s" in text and "restarting it in 4 s" in text
        assert text.count("starting the crasher again") == 4
    finally:
        supervisor.stop()
    assert not steady.alive

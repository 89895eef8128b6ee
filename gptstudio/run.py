"""Run GPT Studio on one port, with embedded queue workers when no Redis is configured.

    python -m gptstudio.run              # what `make run` calls: migrate, workers, engine, app
    python -m gptstudio.run --no-worker  # web only (workers run elsewhere, e.g. on GPU hosts)

Two workers: one for training (and the other long jobs), one for parsing uploads and curation,
so a creator's documents never wait behind a training job (see gptstudio.jobs.queue).
    python -m gptstudio.run --no-engine  # no embedded model server (GPTSTUDIO_ENGINE_URL elsewhere)

The launcher supervises what it starts: a worker, the engine or the web process that dies is
started again after a pause that doubles with each quick death (1 s, 2 s, 4 s … at most 30 s; back
to 1 s once a child has stayed up a minute), with a log line for each. The web process keeps
serving meanwhile: a chat request while the engine is down is a 503 with ``Retry-After``, and
``/healthz`` names the engine as down. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from gptstudio.logs import configure_logging
from gptstudio.services import file_crypto
from gptstudio.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("gptstudio.run")


def migrate() -> None:
    """Bring the configured database to the newest schema (``alembic upgrade head``)."""
    from alembic.config import Config

    from alembic import command

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    command.upgrade(config, "head")


def worker_command() -> list[str]:
    """A Huey consumer for the training queue (one worker: jobs own the accelerator)."""
    return [sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.huey", "-w", "1"]


def documents_worker_command() -> list[str]:
    """A Huey consumer for the documents queue: parsing and curation, two at a time."""
    return [
        sys.executable, "-m", "huey.bin.huey_consumer", "gptstudio.jobs.worker.documents_huey",
        "-w", "2",
    ]  # fmt: skip


def engine_command() -> list[str]:
    """The embedded model server: the base model once, adapters from the artifacts folder."""
    settings = get_settings()
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "engine",
        "--base",
        settings.resolved_base_model,
        "--adapters-dir",
        str(settings.artifacts_dir.resolve()),
        "--port",
        str(settings.embedded_engine_port),
        "--max-concurrent",
        str(settings.engine_max_concurrent),
        "--embedding-model",
        settings.embedding_model,
    ]


def app_command() -> list[str]:
    return [sys.executable, "-m", "reflex", "run", "--env", "prod", "--single-port"]


@dataclass
class Child:
    """One supervised process: its command, and how often it died quickly in a row."""

    name: str
    command: list[str]
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None  # when a dead child is due to start again

    def start(self, now: float) -> None:
        self.process = subprocess.Popen(self.command, env=self.env)  # noqa: S603 (fixed argv)
        self.started_at, self.restart_at = now, None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    """Starts its children and starts again any that dies, after a pause that doubles with each
    quick death (``first_delay`` … ``max_delay``); a child that stayed up ``stable_after``
    seconds starts counting from ``first_delay`` again."""

    children: list[Child]
    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    clock: Callable[[], float] = field(default=time.monotonic)

    def start(self) -> None:
        for child in self.children:
            child.start(self.clock())

    def tend(self) -> None:
        """Notice children that died (each gets a log line and a restart time) and start again
        those whose pause is over."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    log.warning("starting %s again", child.name)
                    child.start(now)
                continue
            process = child.process
            if process is None or process.poll() is None:
                continue
            lived = now - child.started_at
            child.quick_deaths = 1 if lived >= self.stable_after else child.quick_deaths + 1
            delay = min(self.max_delay, self.first_delay * 2 ** (child.quick_deaths - 1))
            child.restart_at = now + delay
            log.warning(
                "%s (pid %d) exited with code %s after %.0f s; restarting it in %.0f s",
                child.name, process.pid, process.returncode, lived, delay,
            )  # fmt: skip

    def stop(self) -> None:
        running = [c.process for c in self.children if c.process is not None and c.alive]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_healthy(
    url: str, supervisor: Supervisor, limit: float, stopped: Callable[[], bool] = lambda: False
) -> bool:
    """Poll ``url`` until it answers 200, ``limit`` seconds pass or ``stopped()`` (tending the
    children meanwhile)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not stopped():
        supervisor.tend()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    return False


def children(args: argparse.Namespace) -> list[Child]:
    """What this launcher runs, by the flags and the settings."""
    settings = get_settings()
    result = []
    if args.worker or not (args.no_worker or settings.redis_url):
        result.append(Child("the training worker", worker_command()))
        result.append(Child("the documents worker", documents_worker_command()))
    if not (args.no_engine or settings.engine_url):
        env = {**os.environ, "ENGINE_API_KEY": settings.engine_api_key.get_secret_value()}
        result.append(Child("the engine", engine_command(), env))
    result.append(Child("the web process", app_command()))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-worker", action="store_true", help="do not start the queue workers")
    parser.add_argument("--worker", action="store_true", help="start the workers even with Redis")
    parser.add_argument("--no-migrate", action="store_true", help="skip `alembic upgrade head`")
    parser.add_argument(
        "--no-engine", action="store_true", help="do not start the embedded model server"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:  # a malformed key stops the start, not the first upload (development: made here)
        file_crypto.keyring()
    except file_crypto.InvalidKeys as error:
        print(f"GPTSTUDIO_ENCRYPTION_KEYS: {error}", file=sys.stderr)
        return 2
    if not args.no_migrate:
        migrate()

    supervisor = Supervisor(children(args))
    stopping = False

    def stop(_signum: int = 0, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    url = f"http://localhost:{settings.port}"
    try:
        supervisor.start()
        if wait_until_healthy(f"{url}/healthz", supervisor, 600, stopped=lambda: stopping):
            print(f"\n  GPT Studio is running at {url}  (Ctrl-C stops it)\n", flush=True)
        while not stopping:
            supervisor.tend()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

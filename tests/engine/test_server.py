"""The HTTP server as a real subprocess on 127.0.0.1, called with the official ``openai`` SDK
(as the web app and any OpenAI client would) and with raw httpx for error objects, adapter
management and client disconnects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import free_port
from tests.engine.conftest import BASE_NAME

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
KEY = "engine-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION: Any = [{"role": "user", "content": "What colour is the hive door?"}]  # SDK TypedDicts


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the engine exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the engine did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(
    tiny_model: Path, adapters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``python -m engine`` with two slots and no queue, so a third request is busy."""
    port = free_port()
    log = tmp_path_factory.mktemp("engine-log") / "engine.log"
    command = [
        sys.executable, "-m", "engine", "--base", str(tiny_model), "--served-model-name",
        BASE_NAME, "--adapters-dir", str(adapters_dir), "--port", str(port),
        "--max-concurrent", "2", "--max-queue", "0", "--threads", "1", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "ENGINE_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


def stats(server: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server}/healthz").json()
    return body


def wait_for_stats(server: str, **expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = stats(server)
        if all(now[key] == value for key, value in expected.items()):
            return now
        time.sleep(0.05)
    pytest.fail(f"engine stats never reached {expected}: {stats(server)}")


def test_models_lists_the_base_and_the_adapters(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) >= {BASE_NAME, "alpha", "beta"}
    assert models["alpha"].model_extra["parent"] == BASE_NAME  # type: ignore[index]


def test_streamed_deltas_concatenate_to_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="alpha",
        messages=QUESTION,
        temperature=0,
        max_tokens=16,
    )
    chunks = list(
        client.chat.completions.create(
            model="alpha",
            messages=QUESTION,
            temperature=0,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert whole.choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert whole.usage is not None and whole.usage.completion_tokens == 16


def test_adapters_answer_differently_and_stop_strings_apply(client: openai.OpenAI) -> None:
    def ask(model: str, **extra: Any) -> Any:
        return client.chat.completions.create(
            model=model,
            messages=QUESTION,
            temperature=0,
            max_tokens=12,
            **extra,
        ).choices[0]

    answers = {model: ask(model).message.content for model in (BASE_NAME, "alpha", "beta")}
    assert len(set(answers.values())) == 3
    text = answers["beta"]
    stop = text[6:9]
    cut = ask("beta", stop=[stop])
    assert cut.message.content == text[: text.index(stop)] and cut.finish_reason == "stop"


def test_sdk_content_parts_and_developer_messages_read_as_text(client: openai.OpenAI) -> None:
    def ask(messages: Any) -> Any:
        answer = client.chat.completions.create(
            model="alpha", messages=messages, temperature=0, max_tokens=8
        )
        return answer.choices[0].message.content

    plain = [{"role": "system", "content": "Be brief."}, *QUESTION]
    parts = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "What colour is "},
                                     {"type": "text", "text": "the hive door?"}]},
    ]  # fmt: skip
    assert ask(parts) == ask(plain)


def test_sdk_errors_carry_openai_codes(client: openai.OpenAI, server: str) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=QUESTION)
    assert missing.value.code == "model_not_found"
    wrong_key = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_key.models.list()


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": "nope", "messages": QUESTION}, 404, "model", "model_not_found"),
        ({"model": "alpha", "messages": []}, 400, "messages", None),
        ({"model": "alpha", "messages": QUESTION, "temperature": -1}, 400, "temperature", None),
        ({"model": "alpha", "messages": QUESTION, "max_tokens": 0}, 400, "max_tokens", None),
        ({"model": "alpha", "messages": QUESTION, "max_tokens": 10**6}, 400, "max_tokens", None),
        ({"model": "alpha", "messages": QUESTION, "n": 2}, 400, "n", None),
        ({"model": "alpha", "messages": QUESTION, "tools": [{"type": "function",
          "function": {"name": "f"}}]}, 400, "tools", None),
        ({"model": "alpha", "messages": QUESTION, "response_format": {"type": "json_object"}},
         400, "response_format", None),
        ({"model": "alpha", "messages": QUESTION, "logprobs": True}, 400, "logprobs", None),
        ({"model": "alpha", "messages": [{"role": "user"}] * 0 + [{"content": "x"}]}, 400,
         "messages[0].role", None),
        ({"model": "alpha", "messages": [{"role": "user", "content": "bees " * 9000}]}, 400,
         "messages", "context_length_exceeded"),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_error_objects(
    server: str, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert error["message"]


def test_a_missing_key_is_401(server: str) -> None:
    response = httpx.get(f"{server}/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def http_stream(http: httpx.Client, body: dict[str, Any]) -> Any:
    return http.stream("POST", "/v1/chat/completions", json=body)


def test_busy_is_503_with_retry_after_and_disconnects_cancel(server: str) -> None:
    long = {"model": BASE_NAME, "messages": QUESTION, "temperature": 0, "max_tokens": 900}
    before = stats(server)["cancelled"]
    with (
        httpx.Client(base_url=server, headers=AUTH, timeout=30) as http,
        http_stream(http, {**long, "stream": True}) as one,
        http_stream(http, {**long, "stream": True}) as two,
    ):
        # Keep the line iterators: a dropped one closes its connection.
        lines = one.iter_lines(), two.iter_lines()
        assert all(next(line).startswith("data: ") for line in lines)  # both are generating
        busy = http.post("/v1/chat/completions", json=long)
        assert busy.status_code == 503, busy.text[-300:]
        assert busy.headers["Retry-After"] == "1"
        assert busy.json()["error"]["code"] == "engine_busy"
        assert stats(server)["running"] == 2
    # leaving the block closed both connections mid-answer
    after = wait_for_stats(server, running=0)
    assert after["cancelled"] == before + 2


def test_a_non_streaming_client_that_gives_up_cancels(server: str) -> None:
    before = stats(server)["cancelled"]
    long = {"model": BASE_NAME, "messages": QUESTION, "temperature": 0, "max_tokens": 900}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server}/v1/chat/completions", json=long, headers=AUTH, timeout=0.5)
    assert wait_for_stats(server, running=0)["cancelled"] == before + 1


def test_adapters_are_loaded_and_unloaded_over_http(
    server: str, client: openai.OpenAI, adapters_dir: Path, spare_adapter: Path
) -> None:
    shutil.copytree(spare_adapter, adapters_dir / "gamma")
    http = httpx.Client(base_url=f"{server}/v1", headers=AUTH)
    try:
        assert http.post("/adapters", json={"name": "gamma"}).status_code == 201
        assert http.post("/adapters", json={"name": "gamma", "path": "gamma"}).status_code == 200
        answer = client.chat.completions.create(model="gamma", messages=QUESTION, max_tokens=3)
        assert answer.usage is not None and answer.usage.completion_tokens == 3
        assert http.delete("/adapters/gamma").json() == {
            "id": "gamma",
            "object": "model",
            "deleted": True,
        }
        assert http.delete("/adapters/gamma").status_code == 404
        assert "gamma" not in {m.id for m in client.models.list()}

        outside = http.post("/adapters", json={"name": "x", "path": str(spare_adapter)})
        assert (outside.status_code, outside.json()["error"]["param"]) == (400, "path")
        missing = http.post("/adapters", json={"name": "absent"})
        assert missing.json()["error"]["code"] == "adapter_load_failed"

        vllm = http.post("/load_lora_adapter", json={"lora_name": "g2", "lora_path": "gamma"})
        assert vllm.status_code == 200, vllm.text
        assert "g2" in {m.id for m in client.models.list()}
        assert http.post("/unload_lora_adapter", json={"lora_name": "g2"}).status_code == 200
    finally:
        http.close()
        shutil.rmtree(adapters_dir / "gamma")


def test_the_protocol_modules_import_without_torch() -> None:
    code = (
        "import sys, engine, engine.protocol, engine.errors; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.asyncio
async def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    from engine.server import create_app

    app = create_app(object(), max_body_bytes=100)  # type: ignore[arg-type]  # never reached
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as http:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "x" * 200}]}
        response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"

"""``/v1/chat/completions`` with the official ``openai`` SDK against the app, which talks to a real
engine process serving the tiny model and a LoRA adapter; usage is recorded per request."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlmodel import select

from gptstudio.api import create_api
from gptstudio.db import session_scope
from gptstudio.models import Role, UsageEvent
from gptstudio.services import account, api_key
from gptstudio.settings import get_settings
from tests.conftest import free_port
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real engine on the tiny model, with one random LoRA adapter in its artifacts folder."""
    from tests.engine.conftest import write_random_adapter
    from trainer.tiny import build_tiny_model

    base = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    artifacts = tmp_path_factory.mktemp("artifacts")
    write_random_adapter(base, artifacts / "jobs" / "1" / "adapter", seed=5)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "engine", "--base", str(base), "--adapters-dir",
               str(artifacts), "--port", str(port), "--max-concurrent", "4"]  # fmt: skip
    engine = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            break
        except OSError:
            assert engine.poll() is None and time.monotonic() < deadline, "engine did not start"
            time.sleep(0.5)
    yield url, artifacts
    engine.terminate()
    engine.wait(timeout=30)


@pytest.fixture
def published(
    db: str, served_model: tuple[str, Path], settings_env: pytest.MonkeyPatch
) -> tuple[str, account.UserPublic]:
    url, artifacts = served_model
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    publish_assistant(
        cy, adapter_path=str(artifacts / "jobs" / "1" / "adapter"),
        system_prompt="You are a beekeeping mentor.",
    )  # fmt: skip
    sue = account.register(email="sue@example.com", password=PASSWORD)
    raw, _ = api_key.create_key(actor=sue, name="sdk", scopes=["chat", "models:read"])
    return raw, sue


def sdk(key: str) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=create_api())
    client = httpx.AsyncClient(transport=transport, base_url="http://studio.test")
    return openai.AsyncOpenAI(api_key=key, base_url="http://studio.test/v1", http_client=client)


def test_openai_sdk_streaming_and_not(published: tuple[str, account.UserPublic]) -> None:
    key, sue = published

    async def scenario() -> tuple[str, str, openai.types.CompletionUsage | None]:
        client = sdk(key)
        models = await client.models.list()
        assert [m.id for m in models.data] == ["bee-mentor"]
        question = [{"role": "user", "content": "How often should I check for mites?"}]
        whole = await client.chat.completions.create(
            model="bee-mentor",
            messages=question,
            max_tokens=12,
            temperature=0,
            seed=1,  # type: ignore[arg-type]
        )
        stream = await client.chat.completions.create(
            model="bee-mentor", messages=question, max_tokens=12, temperature=0, seed=1,  # type: ignore[arg-type]
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        parts, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
            usage = chunk.usage or usage
        assert whole.usage is not None and whole.usage.completion_tokens > 0
        return whole.choices[0].message.content or "", "".join(parts), usage

    whole, streamed, usage = asyncio.run(scenario())
    assert whole and streamed == whole  # greedy: the same answer both ways
    assert usage is not None and usage.prompt_tokens > 0
    with session_scope() as session:
        events = session.exec(select(UsageEvent)).all()
    assert len(events) == 2 and {e.source for e in events} == {"api"}
    assert all(e.user_id == sue.id and e.output_tokens > 0 for e in events)


@pytest.mark.parametrize(
    ("change", "status", "code", "param"),
    [
        ({"model": "no-such-assistant"}, 404, "model_not_found", None),
        ({"temperature": -1}, 400, None, None),
        ({"max_tokens": 100_000}, 400, None, None),
        ({"messages": []}, 400, None, None),
        ({"messages": [{"role": "user", "content": "  "}]}, 400, None, None),
        # Refused by name, as the engine refuses them (not ignored, not 512 tokens):
        ({"max_tokens": 0}, 400, None, "max_tokens"),
        ({"max_completion_tokens": 0}, 400, None, "max_completion_tokens"),
        ({"n": 2}, 400, None, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, None, "tools"),
        ({"response_format": {"type": "json_object"}}, 400, None, "response_format"),
        ({"logprobs": True}, 400, None, "logprobs"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, None, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, None,
         "messages[0].content"),
        # A question the model's window cannot hold, even alone: said so, by its code.
        ({"messages": [{"role": "user", "content": "Qx7-zk9 " * 3500}]}, 400,
         "context_length_exceeded", None),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_errors(
    published: tuple[str, account.UserPublic],
    change: dict[str, object],
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    key, _ = published
    body = {"model": "bee-mentor", "messages": [{"role": "user", "content": "Hi"}], **change}

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api()), base_url="http://studio.test"
        ) as client:
            return await client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )

    response = asyncio.run(call())
    error = response.json()["error"]
    assert response.status_code == status, error
    assert error["message"]
    if code:
        assert error["code"] == code
    if param:
        assert (error["param"], error["type"]) == (param, "invalid_request_error")
    with session_scope() as session:
        assert session.exec(select(UsageEvent)).all() == []  # nothing was answered or metered


def test_engine_down_is_a_clear_503(
    published: tuple[str, account.UserPublic], settings_env: pytest.MonkeyPatch
) -> None:
    key, _ = published
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", "http://127.0.0.1:1")
    get_settings.cache_clear()

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api()), base_url="http://studio.test"
        ) as client:
            return await client.post(
                "/v1/chat/completions",
                json={"model": "bee-mentor", "messages": [{"role": "user", "content": "Hi"}]},
                headers={"Authorization": f"Bearer {key}"},
            )

    response = asyncio.run(call())
    assert response.status_code == 503
    assert "not reachable" in response.json()["error"]["message"]


def test_openai_sdk_content_parts_and_developer_messages(
    published: tuple[str, account.UserPublic],
) -> None:
    """The official SDK's typed messages (content parts, the ``developer`` role) are answered as
    the same text sent plainly would be; what the engine refuses, the app refuses alike."""
    key, _ = published
    parts: Any = [
        {"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
        {"role": "user", "content": [{"type": "text", "text": "How often should I "},
                                     {"type": "text", "text": "check for mites?"}]},
    ]  # fmt: skip
    plain: Any = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "How often should I check for mites?"},
    ]

    async def ask(messages: Any) -> str:
        answer = await sdk(key).chat.completions.create(
            model="bee-mentor", messages=messages, max_tokens=8, temperature=0
        )
        return answer.choices[0].message.content or ""

    async def scenario() -> tuple[str, str, openai.BadRequestError]:
        with_parts, plainly = await ask(parts), await ask(plain)
        try:
            await sdk(key).chat.completions.create(model="bee-mentor", messages=plain, n=2)
        except openai.BadRequestError as refused:
            return with_parts, plainly, refused
        raise AssertionError("n=2 was answered")

    with_parts, plainly, refused = asyncio.run(scenario())
    assert with_parts and with_parts == plainly  # greedy: the same prompt both ways
    assert refused.status_code == 400 and refused.param == "n"

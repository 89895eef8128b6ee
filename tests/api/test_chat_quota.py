"""Quotas, rate limits and metering on the one chat path, through the real HTTP route.

The app runs on real PostgreSQL/SQLite and real Redis. The engine is :func:`echo_engine`, a
real HTTP server speaking the engine's OpenAI streaming protocol (usage included) that answers
instantly with exactly ``max_tokens`` tokens, so the quota arithmetic is exact; one test keeps
the real engine process on the tiny model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from sqlmodel import select

from engine.protocol import TextDelta
from gptstudio.api import create_api
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, RateLimited
from gptstudio.models import (
    ModelVersion,
    Plan,
    Role,
    Subscription,
    UsageEvent,
    User,
)
from gptstudio.services import access, account, api_key, completion, prompt, quota, usage
from gptstudio.settings import get_settings
from tests.api.test_chat import served_model  # noqa: F401  (the real engine, module-scoped)
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"
QUESTION = [{"role": "user", "content": "Hi"}]
SYSTEM_PROMPT = "You are a beekeeping mentor."


# --- an instant engine ----------------------------------------------------------------------


def echo_engine() -> FastAPI:
    """The engine's protocol (``/v1/models``, vLLM's ``/v1/load_lora_adapter``, streamed
    ``/v1/chat/completions`` with ``stream_options.include_usage``), answering at once with
    ``max_tokens`` one-token words. ``app.state.delay`` slows each token down."""
    app = FastAPI()
    app.state.delay = 0.0
    app.state.fail_after = None  # tokens after which the answer fails (an error in the stream)
    app.state.calls = []  # the adapter each completion request asked for
    loaded: set[str] = set()
    app.state.loaded = loaded  # clear it to act out an engine restart

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": n, "object": "model"} for n in sorted(loaded)]}

    @app.post("/v1/load_lora_adapter")
    async def load(request: Request) -> PlainTextResponse:
        loaded.add((await request.json())["lora_name"])
        return PlainTextResponse("Success: LoRA adapter loaded.")

    @app.post("/v1/chat/completions", response_model=None)
    async def complete(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        app.state.calls.append(body["model"])
        if body["model"] not in loaded:
            error = {"message": f"The model `{body['model']}` does not exist.", "code": 404}
            return JSONResponse({"error": error}, status_code=404)
        prompt = sum(len(m["content"].split()) + 2 for m in body["messages"])
        answer = int(body.get("max_tokens") or 16)
        usage_asked = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _echo_events(app, body["model"], prompt, answer, usage_asked),
            media_type="text/event-stream",
        )

    return app


async def _echo_events(
    app: FastAPI, model: str, prompt: int, answer: int, usage_asked: bool
) -> AsyncIterator[str]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": choices, **extra}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
    for n in range(answer):
        if app.state.delay:
            await asyncio.sleep(app.state.delay)
        if n == app.state.fail_after:
            error = {"message": "CUDA out of memory", "type": "server_error", "param": None,
                     "code": "generation_failed"}  # fmt: skip
            yield f"data: {json.dumps({'error': error})}\n\n"
            yield "data: [DONE]\n\n"
            return
        yield chunk([{"index": 0, "delta": {"content": "echo "}, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "length"}])
    if usage_asked:
        usage_body = {"prompt_tokens": prompt, "completion_tokens": answer,
                      "total_tokens": prompt + answer}  # fmt: skip
        yield chunk([], usage=usage_body)
    yield "data: [DONE]\n\n"


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free local port in a thread; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the echo engine did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, FastAPI]]:
    app = echo_engine()
    with serve(app) as url:
        yield url, app


# --- the studio -----------------------------------------------------------------------------


class Studio:
    def __init__(self, assistant_id: int, version_id: int) -> None:
        self.assistant_id = assistant_id
        self.version_id = version_id
        self.keys: dict[str, tuple[str, account.UserPublic]] = {}

    def plan(self, **fields: Any) -> Plan:
        with session_scope() as session:
            plan = Plan(assistant_id=self.assistant_id, **fields)
            session.add(plan)
            session.flush()
            return plan

    def user(self, email: str) -> tuple[str, account.UserPublic]:
        person = account.register(email=email, password=PASSWORD)
        raw, _ = api_key.create_key(actor=person, name="sdk", scopes=["chat"])
        self.keys[email] = (raw, person)
        return raw, person

    def model(self) -> completion.Served:
        return completion.served(slug="bee-mentor")


def publish(adapter_path: str) -> Studio:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = publish_assistant(cy, adapter_path=adapter_path, system_prompt=SYSTEM_PROMPT)
    return Studio(bees.assistant_id, bees.version_id)


@pytest.fixture
def studio(
    db: str, redis_url: str, echo: tuple[str, FastAPI], settings_env: pytest.MonkeyPatch
) -> Iterator[Studio]:
    url, app = echo
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
    settings_env.setenv("GPTSTUDIO_REDIS_URL", redis_url)
    get_settings.cache_clear()
    app.state.delay, app.state.fail_after = 0.0, None
    app.state.calls.clear()
    yield publish("/adapters/bees-1")
    app.state.delay, app.state.fail_after = 0.0, None


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_api())
    return httpx.AsyncClient(transport=transport, base_url="http://studio.test", timeout=120)


async def ask(
    http: httpx.AsyncClient, key: str, *, max_tokens: int = 40, stream: bool = False
) -> httpx.Response:
    options = {"include_usage": True} if stream else None
    body = {"model": "bee-mentor", "messages": QUESTION, "max_tokens": max_tokens,
            "stream": stream, "stream_options": options}  # fmt: skip
    return await http.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )


def metered(**filters: Any) -> int:
    return usage.totals(**filters).total_tokens


def one_request_at_most(max_tokens: int) -> int:
    """What one request may reserve: its answer plus the bound of its prompt."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, *QUESTION]
    return max_tokens + prompt.prompt_bound(messages)


# --- tests ----------------------------------------------------------------------------------


def test_500_concurrent_requests_never_exceed_a_small_quota(studio: Studio) -> None:
    limit = 2_000
    studio.plan(key="free", name="Free", included_tokens=limit)
    key, sue = studio.user("sue@example.com")

    async def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with client() as http:
            first = await asyncio.gather(*(ask(http, key) for _ in range(500)))
            after: list[httpx.Response] = []
            while not after or after[-1].status_code == 200:  # then spend what is left
                after.append(await ask(http, key))
                assert len(after) < 200, "the quota never ran out"
            return list(first), after

    first, after = asyncio.run(burst())
    answered = [r for r in first + after if r.status_code == 200]
    refused = [r for r in first + after if r.status_code != 200]
    assert answered and refused
    assert {r.status_code for r in refused} == {429}
    for response in refused:
        error = response.json()["error"]
        assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
        assert "/pricing?assistant=" in error["message"] and "renews on" in error["message"]
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["x-ratelimit-limit-tokens"] == str(limit)
        assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    total = metered(user_id=sue.id, assistant_id=studio.assistant_id)
    # nothing lost or counted twice: the answers' usage, the database and Redis agree
    assert total == sum(r.json()["usage"]["total_tokens"] for r in answered)
    assert usage.totals(user_id=sue.id).requests == len(answered)
    state = quota.status(user_id=sue.id, assistant_id=studio.assistant_id)
    assert (state.used, state.reserved) == (total, 0)
    # never over by more than one request, and the whole quota was usable
    assert limit - one_request_at_most(40) < total <= limit + one_request_at_most(40)
    assert after[-1].status_code == 429


def test_requests_per_minute_give_429_with_retry_after_and_headers(studio: Studio) -> None:
    studio.plan(key="free", name="Free", requests_per_minute=2, included_tokens=10_000)
    key, _ = studio.user("sue@example.com")

    async def three() -> list[httpx.Response]:
        async with client() as http:
            streamed = await ask(http, key, max_tokens=5, stream=True)
            return [streamed, await ask(http, key, max_tokens=5), await ask(http, key)]

    streamed, whole, refused = asyncio.run(three())
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    assert streamed.headers["x-ratelimit-limit-requests"] == "2"
    assert streamed.headers["x-ratelimit-remaining-requests"] == "1"
    assert streamed.headers["x-ratelimit-reset-requests"].endswith("s")
    assert streamed.headers["x-ratelimit-limit-tokens"] == "10000"
    assert int(streamed.headers["x-ratelimit-remaining-tokens"]) < 10_000
    assert whole.status_code == 200 and whole.headers["x-ratelimit-remaining-requests"] == "0"
    assert whole.headers["x-request-id"] == whole.json()["id"]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "2 requests per minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 120  # a sliding window: up to 2 min
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    spent = usage.totals()
    assert (spent.requests, spent.output_tokens) == (2, 10)  # the refused one spent nothing


def test_402_when_a_paid_plan_is_needed_or_payment_failed(studio: Studio) -> None:
    pro = studio.plan(key="pro", name="Pro", monthly_price_cents=900, included_tokens=100_000)
    key, _ = studio.user("sue@example.com")
    lapsed_key, lapsed = studio.user("sam@example.com")
    with session_scope() as session:
        session.add(
            Subscription(
                user_id=lapsed.id, assistant_id=studio.assistant_id, plan_id=pro.id, tier="pro",
                status="past_due", past_due_since=utcnow() - timedelta(days=30),
            )
        )  # fmt: skip

    async def both() -> list[httpx.Response]:
        async with client() as http:
            return [await ask(http, key), await ask(http, lapsed_key, stream=True)]

    for response, says in zip(
        asyncio.run(both()), ["needs a subscription", "payment failed"], strict=True
    ):
        assert response.status_code == 402
        error = response.json()["error"]
        assert error["code"] == "payment_required" and says in error["message"]
        assert f"/pricing?assistant={studio.assistant_id}" in error["message"]
    assert metered() == 0


def test_visitors_have_separate_quotas(studio: Studio) -> None:
    limit = 300
    studio.plan(key="free", name="Free", included_tokens=limit)
    model = studio.model()

    async def spend(visitor: str) -> int:
        answers = 0
        while True:
            chunks = completion.stream_completion(
                model=model, messages=QUESTION, params=completion.Params(max_tokens=40),
                user_id=None, source="widget", visitor_id=visitor,
            )  # fmt: skip
            try:
                async for _ in chunks:
                    pass
            except RateLimited as error:
                assert error.code == "insufficient_quota"
                return answers
            answers += 1

    assert asyncio.run(spend("visitor-a")) >= 2
    spent_a = metered(visitor_id="visitor-a")
    assert limit - one_request_at_most(40) < spent_a <= limit + one_request_at_most(40)
    assert metered(visitor_id="visitor-b") == 0
    assert asyncio.run(spend("visitor-b")) >= 2  # a's exhausted quota does not touch b's
    assert metered(visitor_id="visitor-a") == spent_a
    state = quota.status(visitor_id="visitor-a", assistant_id=studio.assistant_id)
    assert state.remaining is not None and state.remaining < one_request_at_most(40)
    with session_scope() as session:
        events = session.exec(select(UsageEvent)).all()
    assert {(e.user_id, e.source) for e in events} == {(None, "widget")}
    assert {e.visitor_id for e in events} == {"visitor-a", "visitor-b"}
    with pytest.raises(InvalidInput, match="visitor id"):
        asyncio.run(anext(completion.stream_completion(
            model=model, messages=QUESTION, params=completion.Params(), user_id=None,
            source="widget",
        )))  # fmt: skip


def test_redis_flushed_mid_period_still_enforces_the_quota(studio: Studio, redis_url: str) -> None:
    limit = 600
    studio.plan(key="free", name="Free", included_tokens=limit)
    key, sue = studio.user("sue@example.com")
    flush = redis.Redis.from_url(redis_url).flushdb

    async def run() -> list[int]:
        statuses = []
        async with client() as http:
            for _ in range(3):
                statuses.append((await ask(http, key)).status_code)
            flush()  # Redis restarts and forgets: the database remembers
            while statuses[-1] == 200:
                statuses.append((await ask(http, key)).status_code)
                assert len(statuses) < 50, "the quota never ran out"
            flush()
            statuses.append((await ask(http, key)).status_code)
        return statuses

    statuses = asyncio.run(run())
    assert statuses[:3] == [200, 200, 200] and statuses[-2:] == [429, 429]
    total = metered(user_id=sue.id)
    assert limit - one_request_at_most(40) < total <= limit + one_request_at_most(40)


def test_a_stopped_answer_counts_what_was_generated(
    studio: Studio, echo: tuple[str, FastAPI]
) -> None:
    studio.plan(key="free", name="Free", included_tokens=5_000)
    _, sue = studio.user("sue@example.com")
    echo[1].state.delay = 0.02
    context = completion.RequestContext()

    async def stop_after_three_words() -> None:
        events = completion.stream_completion(
            model=studio.model(), messages=QUESTION, params=completion.Params(max_tokens=200),
            user_id=sue.id, source="ui", context=context,
        )  # fmt: skip
        words = 0
        async for event in events:
            words += isinstance(event, TextDelta) and bool(event.text)
            if words == 3:
                break
        await events.aclose()  # the user pressed stop: the engine request is dropped

    asyncio.run(stop_after_three_words())
    with session_scope() as session:
        event = session.exec(select(UsageEvent)).one()
    assert event.request_id == context.request_id and event.source == "ui"
    # three words were streamed (15 characters: the estimate counts at least a token per four)
    assert 3 <= event.output_tokens <= 4 and event.input_tokens > 0
    state = quota.status(user_id=sue.id, assistant_id=studio.assistant_id)
    assert state.reserved == 0 and state.used == event.input_tokens + event.output_tokens
    assert context.headers()["x-ratelimit-limit-tokens"] == "5000"


def test_an_answer_failing_midway_ends_with_an_openai_error_and_is_metered(
    studio: Studio, echo: tuple[str, FastAPI]
) -> None:
    studio.plan(key="free", name="Free", included_tokens=5_000)
    key, sue = studio.user("sue@example.com")
    echo[1].state.fail_after = 2

    async def call() -> httpx.Response:
        async with client() as http:
            return await ask(http, key, max_tokens=5, stream=True)

    response = asyncio.run(call())
    assert response.status_code == 200  # the answer had begun
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["code"] == "generation_failed" and "out of memory" in error["message"]
    chunks = [json.loads(body) for body in data[:-2]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "echo echo "
    with session_scope() as session:
        event = session.exec(select(UsageEvent)).one()
    assert event.user_id == sue.id and event.output_tokens >= 2  # what was streamed counts
    state = quota.status(user_id=sue.id, assistant_id=studio.assistant_id)
    assert state.reserved == 0


def test_engine_errors_release_the_reservation(
    studio: Studio, settings_env: pytest.MonkeyPatch
) -> None:
    studio.plan(key="free", name="Free", included_tokens=1_000)
    key, sue = studio.user("sue@example.com")
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", "http://127.0.0.1:1")
    get_settings.cache_clear()

    async def call() -> httpx.Response:
        async with client() as http:
            return await ask(http, key)

    response = asyncio.run(call())
    assert response.status_code == 503 and "not reachable" in response.json()["error"]["message"]
    state = quota.status(user_id=sue.id, assistant_id=studio.assistant_id)
    assert (state.used, state.reserved, state.remaining) == (0, 0, 1_000)
    assert metered() == 0


def test_real_engine_answers_within_the_clamped_quota(
    db: str,
    redis_url: str,
    served_model: tuple[str, Path],  # noqa: F811
    settings_env: pytest.MonkeyPatch,
) -> None:
    url, artifacts = served_model
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", url)
    settings_env.setenv("GPTSTUDIO_REDIS_URL", redis_url)
    get_settings.cache_clear()
    studio = publish(str(artifacts / "jobs" / "1" / "adapter"))
    limit = 400
    studio.plan(key="free", name="Free", included_tokens=limit)
    key, sue = studio.user("sue@example.com")
    question = [{"role": "user", "content": "How often should I check for mites?"}]
    bound = prompt.prompt_bound([{"role": "system", "content": SYSTEM_PROMPT}, *question])
    usage.record(
        request_id="earlier", assistant_id=studio.assistant_id, model_version_id=None,
        user_id=sue.id, source="api", input_tokens=limit - bound - 5, output_tokens=0,
    )  # fmt: skip

    async def scenario() -> Any:
        sdk = openai.AsyncOpenAI(api_key=key, base_url="http://studio.test/v1",
                                 http_client=client())  # fmt: skip
        return await sdk.chat.completions.with_raw_response.create(
            model="bee-mentor", messages=question, max_tokens=64, temperature=0,  # type: ignore[arg-type]
        )  # fmt: skip

    raw = asyncio.run(scenario())
    answer = raw.parse()
    assert answer.usage.completion_tokens <= 5  # max_tokens was clamped to what was left
    assert raw.headers["x-ratelimit-limit-tokens"] == str(limit)
    with session_scope() as session:
        event = session.exec(select(UsageEvent).where(UsageEvent.request_id == answer.id)).one()
    assert (event.input_tokens, event.output_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert event.input_tokens <= bound  # the reservation's prompt bound holds for a real tokenizer


def test_identical_temperature_zero_requests_are_answered_from_the_cache_per_user(
    studio: Studio, echo: tuple[str, FastAPI]
) -> None:
    studio.plan(key="free", name="Free", included_tokens=100_000)
    sue_key, sue = studio.user("sue@example.com")
    bob_key, _ = studio.user("bob@example.com")
    calls = echo[1].state.calls

    async def ask_at(key: str, temperature: float) -> dict[str, Any]:
        async with client() as http:
            body = {"model": "bee-mentor", "messages": QUESTION, "max_tokens": 5,
                    "temperature": temperature}  # fmt: skip
            answer = await http.post("/v1/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

    first = asyncio.run(ask_at(sue_key, 0))
    again = asyncio.run(ask_at(sue_key, 0))
    assert len(calls) == 1  # the second identical request never reached the engine
    assert again["choices"][0]["message"] == first["choices"][0]["message"]
    assert again["usage"] == first["usage"] and again["id"] != first["id"]
    assert usage.totals(user_id=sue.id).requests == 2  # cached answers still count

    asyncio.run(ask_at(bob_key, 0))  # another user: never someone else's cached answer
    asyncio.run(ask_at(sue_key, 0.7))  # sampling: never cached
    assert len(calls) == 3


def test_a_split_sends_callers_to_the_candidate_and_a_rollback_brings_them_back(
    studio: Studio, echo: tuple[str, FastAPI]
) -> None:
    from gptstudio.services import rollout

    sue_key, _ = studio.user("sue@example.com")
    with session_scope() as session:
        creator = session.exec(select(User).where(User.email == "cy@example.com")).one()
        v2 = ModelVersion(assistant_id=studio.assistant_id, version=2, base_model="tiny",
                          status="ready", adapter_path="/adapters/bees-2",
                          metrics={"gate": {"passed": True}})  # fmt: skip
        session.add(v2)
        session.flush()
        owner, v2_id = access.public(creator), v2.id or 0
    rollout.set_split(
        actor=owner, assistant_id=studio.assistant_id, candidate_version_id=v2_id, percent=100,
        override_reason="Trying the second version on everyone.",
    )  # fmt: skip
    calls = echo[1].state.calls
    asyncio.run(ask_once(sue_key))
    assert calls[-1] == "bee-mentor-v2"
    rollout.rollback(actor=owner, assistant_id=studio.assistant_id)
    asyncio.run(ask_once(sue_key))
    assert calls[-1] == "bee-mentor-v1"


async def ask_once(key: str) -> None:
    async with client() as http:
        answer = await ask(http, key, max_tokens=3)
        assert answer.status_code == 200, answer.text


def test_an_engine_that_lost_the_adapter_loads_it_again(
    studio: Studio, echo: tuple[str, FastAPI]
) -> None:
    """The app remembers which adapters the engine holds (no /v1/models call per request); an
    engine restarted meanwhile answers 404, and the app loads the adapter and asks again."""
    _, app = echo
    key, _ = studio.user("sue@example.com")

    async def twice() -> list[httpx.Response]:
        async with client() as http:
            first = await ask(http, key, max_tokens=3)
            app.state.loaded.clear()  # the engine restarted: no adapter loaded
            return [first, await ask(http, key, max_tokens=3)]

    first, second = asyncio.run(twice())
    assert first.status_code == 200 and second.status_code == 200, second.text
    assert second.json()["choices"][0]["message"]["content"] == "echo echo echo "
    assert app.state.calls[-2:] == ["bee-mentor-v1", "bee-mentor-v1"]  # refused, then answered
    assert "bee-mentor-v1" in app.state.loaded

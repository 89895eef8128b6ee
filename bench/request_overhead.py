"""Benchmark the overhead of the chat request path's checks: API-key auth, entitlement, quota
(requests per minute + token reservation) and metering (usage event + settle), against the same
route with those checks off.

Run from the repository root (``PYTHONPATH=.`` if the project is not installed); PostgreSQL and
Redis as for the tests (``GPTSTUDIO_TEST_POSTGRES_URL``, ``GPTSTUDIO_TEST_REDIS_URL``; a
throw-away database is created and dropped; ``--embedded`` uses SQLite and no Redis instead)::

    .venv/bin/python bench/request_overhead.py [--concurrency 200] [--rounds 5] [--users 50]
        [--workers N]

The engine is replaced by an instant echo (the engine's OpenAI streaming protocol with usage,
from ``tests/api/test_chat_quota.py``) in its own process, so both sides pay the same engine
round trips and only the checks differ:

* checks on: ``POST /v1/chat/completions`` of the app (``gptstudio.api.create_api()``), a
  subscriber on a free plan with a token quota and a requests-per-minute limit high enough that
  every request is admitted, so every check runs in full;
* checks off: the same app (routers, handlers, middleware) whose chat route has the same body
  (model lookup, the engine stream, the same JSON answer) without auth, entitlement, quota or
  metering.

Each round fires ``--concurrency`` non-streaming requests at once at one side, then the other
(sides interleaved, so a burst of load from other processes hits both), through httpx's ASGI
transport in this process. Latency = request sent to answer parsed. Printed: p50/p99 per side,
the overhead (on - off) and the ratio; also one request at a time, the per-request cost with no
queueing; throughput, and the checks' cost per request under load.

``--workers N`` serves each side with N uvicorn processes over real HTTP instead, the requests
spread round robin: the shape of a deployment with several web processes sharing Redis and
PostgreSQL, for a machine with the cores for it (on 2 cores the HTTP client alone costs more
than the app does).

Target: p99 overhead at ``--concurrency`` <= 5 ms (the p50 overhead too: one burst's p99 is
noisy). Exits 1 when missed.
"""

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 5.0
QUESTION = [{"role": "user", "content": "How often should I check the hive for mites?"}]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_echo() -> tuple[subprocess.Popen[bytes], str]:
    return serve("tests.api.test_chat_quota:echo_engine", probe="/v1/models")


def configure(args: argparse.Namespace, data_dir: Path) -> tuple[str, str]:
    """Point the settings at a fresh database (and Redis); returns (database URL, admin URL)."""
    os.environ["GPTSTUDIO_DATA_DIR"] = str(data_dir)
    if args.embedded:
        return f"sqlite:///{data_dir / 'bench.db'}", ""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get(
        "GPTSTUDIO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"gptstudio_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    redis_url = os.environ.get("GPTSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ["GPTSTUDIO_REDIS_URL"] = redis_url
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), admin_url


def drop(database_url: str, admin_url: str) -> None:
    if not admin_url:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from gptstudio import cache
    from gptstudio.db import engine_for

    cache.stop_listening(database_url)
    engine_for(database_url).dispose()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        name = make_url(database_url).database
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def populate(users: int) -> list[str]:
    """A published assistant with a generous free plan, and ``users`` subscribers' API keys."""
    from gptstudio.db import session_scope
    from gptstudio.models import Assistant, ModelVersion, Plan, Role, User
    from gptstudio.services import access, account, api_key, assistant

    account.register(email="root@example.com", password="correct horse battery")
    cy = account.register(email="cy@example.com", password="correct horse battery",
                          role=Role.creator)  # fmt: skip
    bees = assistant.create_assistant(actor=cy, name="Bee Mentor")
    with session_scope() as session:
        version = ModelVersion(assistant_id=bees.id, version=1, base_model="tiny",
                               status="published", adapter_path="/adapters/bees-1")  # fmt: skip
        session.add(version)
        session.flush()
        row = session.get(Assistant, bees.id)
        assert row is not None
        row.is_published, row.current_model_version_id = True, version.id
        row.system_prompt = "You are a beekeeping mentor."
        session.add(Plan(assistant_id=bees.id, key="free", name="Free",
                         included_tokens=2_000_000_000, requests_per_minute=1_000_000))  # fmt: skip
        people = [User(email=f"bee{n}@example.com", password_hash="-") for n in range(users)]
        session.add_all(people)
    keys = []
    for person in people:
        raw, _ = api_key.create_key(actor=access.public(person), name="bench", scopes=["chat"])
        keys.append(raw)
    return keys


def unchecked_app() -> Any:
    """The same app (the same routers in the same order, exception handlers and middleware:
    metrics, security headers, the origin check) with the chat route's checks off."""
    from fastapi import APIRouter, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from engine.protocol import ChatCompletionRequest
    from gptstudio import api, cache
    from gptstudio.api.chat import _collect, _params
    from gptstudio.api.errors import domain_error_handler, validation_error_handler
    from gptstudio.errors import DomainError
    from gptstudio.services import completion, prompt

    cache.install()  # as create_api() does: the same cached lookups on both sides
    router = APIRouter(prefix="/v1")

    @router.post("/chat/completions")
    async def completions(body: ChatCompletionRequest) -> JSONResponse:
        # The same model lookup as the checked route (the version for this caller).
        model = completion.cached_served(slug=body.model)
        if model is None:
            model = await asyncio.to_thread(
                completion.served_for_user, slug=body.model, key="user:0"
            )
        messages = prompt.with_system_prompt(model.system_prompt, body.plain_messages())
        events = completion.engine_events(model, messages, _params(body))
        first = await anext(events)
        context = completion.RequestContext(request_id="chatcmpl-unchecked")
        return JSONResponse(await _collect(first, events, body.model, context))

    app = FastAPI(title="GPT Studio", docs_url="/api/docs", openapi_url="/api/openapi.json")
    for module in (
        api.ops,
        api.auth,
        api.model_list,
        api.documents,
        None,
        api.stripe_webhook,
        api.widget,
    ):
        app.include_router(router if module is None else module.router)
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(api.OriginCheckMiddleware)
    app.add_middleware(api.ObservabilityMiddleware)
    return app


async def fire(http: Any, keys: list[str], count: int) -> list[float]:
    """``count`` requests at once through the ``httpx.AsyncClient`` (or, given several, round
    robin over them: one per server process); their latencies in ms."""
    clients = http if isinstance(http, list) else [http]
    body = {"model": "bee-mentor", "messages": QUESTION, "max_tokens": 16}

    async def one(index: int) -> float:
        headers = {"Authorization": f"Bearer {keys[index % len(keys)]}"}
        start = time.perf_counter()
        client = clients[index % len(clients)]
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
        response.json()
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise SystemExit(f"request failed: {response.status_code} {response.text}")
        return elapsed * 1000

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def sequential(http: Any, keys: list[str], count: int) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        times += await fire(http, keys, 1)
    return times


def serve(target: str, *, probe: str = "/healthz") -> tuple[subprocess.Popen[bytes], str]:
    """``target`` (an import string of an app factory) served by one uvicorn process with this
    process's settings; (process, URL) once it answers ``probe``."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
        "--timeout-keep-alive", "600",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}{probe}", timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{target} did not start") from None
            time.sleep(0.3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, on: list[float], off: list[float]) -> tuple[float, float]:
    p50 = (percentile(on, 0.5), percentile(off, 0.5))
    p99 = (percentile(on, 0.99), percentile(off, 0.99))
    print(f"{name}: {len(on)} requests per side")
    print(f"  checks on : p50 {p50[0]:8.2f} ms   p99 {p99[0]:8.2f} ms")
    print(f"  checks off: p50 {p50[1]:8.2f} ms   p99 {p99[1]:8.2f} ms")
    print(f"  overhead  : p50 {p50[0] - p50[1]:8.2f} ms   p99 {p99[0] - p99[1]:8.2f} ms   "
          f"(ratio on/off p50 {p50[0] / p50[1]:.2f}x, p99 {p99[0] / p99[1]:.2f}x)")  # fmt: skip
    return p50[0] - p50[1], p99[0] - p99[1]


async def measure(
    args: argparse.Namespace, keys: list[str], urls: tuple[list[str], list[str]] | None
) -> tuple[float, float]:
    import httpx

    if urls is None:  # in this process, through httpx's ASGI transport
        from gptstudio.api import create_api

        sides = [httpx.ASGITransport(app=create_api()), httpx.ASGITransport(app=unchecked_app())]
        checked, unchecked = (
            [httpx.AsyncClient(transport=t, base_url="http://bench", timeout=120)] for t in sides
        )
    else:  # server processes, over HTTP: one client each
        limits = httpx.Limits(max_connections=args.concurrency)
        checked, unchecked = (
            [httpx.AsyncClient(base_url=u, timeout=120, limits=limits) for u in side]
            for side in urls
        )
    try:
        return await _measure(args, keys, checked, unchecked, in_process=urls is None)
    finally:
        for client in checked + unchecked:
            await client.aclose()


async def _measure(
    args: argparse.Namespace, keys: list[str], checked: Any, unchecked: Any, *, in_process: bool
) -> tuple[float, float]:
    await fire(checked, keys, args.concurrency)  # warm-up: connections, caches, scripts
    await fire(unchecked, keys, args.concurrency)
    single_on, single_off = [], []
    for _ in range(args.single):
        single_on += await sequential(checked, keys, 1)
        single_off += await sequential(unchecked, keys, 1)
    burst_on, burst_off = [], []
    wall_on = wall_off = cpu_on = cpu_off = 0.0
    for _ in range(args.rounds):
        start, cpu = time.perf_counter(), time.process_time()
        burst_on += await fire(checked, keys, args.concurrency)
        wall_on += time.perf_counter() - start
        cpu_on += time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        burst_off += await fire(unchecked, keys, args.concurrency)
        wall_off += time.perf_counter() - start
        cpu_off += time.process_time() - cpu
    report("one request at a time", single_on, single_off)
    overhead = report(f"{args.concurrency} concurrent", burst_on, burst_off)
    print(f"  mean latency per request: on {statistics.mean(burst_on):.2f} ms, "
          f"off {statistics.mean(burst_off):.2f} ms")  # fmt: skip
    # Every request of a burst is in flight at once on 2 cores, so the last one answered waits
    # for nearly all the others: p99 ~ the burst's length, and the checks' cost per request is
    # the difference of the burst lengths over the requests.
    count = len(burst_on)
    print(f"  throughput: on {count / wall_on:.0f} req/s, off {count / wall_off:.0f} req/s; "
          f"the checks' cost per request under load: {(wall_on - wall_off) / count * 1000:.3f} "
          "ms")  # fmt: skip
    if in_process:
        print(f"  CPU of this process (client + app, all threads) per request: on "
              f"{cpu_on / count * 1000:.3f} ms, off {cpu_off / count * 1000:.3f} ms; the rest "
              "of the difference is Redis' and PostgreSQL's, on the same cores here")  # fmt: skip
    return overhead


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=200, help="one-at-a-time requests")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--embedded", action="store_true", help="SQLite, no Redis")
    parser.add_argument(
        "--workers", type=int, default=0,
        help="serve each side with this many uvicorn processes over HTTP, requests spread round "
        "robin (0: in this process, through httpx's ASGI transport)",
    )  # fmt: skip
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("GPTSTUDIO_")]:
        if not key.startswith("GPTSTUDIO_TEST_"):
            del os.environ[key]
    echo, echo_url = start_echo()
    servers: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        database_url, admin_url = configure(args, Path(tmp))
        os.environ["GPTSTUDIO_DATABASE_URL"] = database_url
        os.environ["GPTSTUDIO_ENGINE_URL"] = echo_url
        try:
            sys.path.insert(0, str(ROOT))
            from tests.conftest import upgrade

            upgrade(database_url)
            keys = populate(args.users)
            backend = "PostgreSQL + Redis" if admin_url else "SQLite, in-process limits"
            where = f"{args.workers} worker processes per side" if args.workers else "in process"
            print(f"request overhead: {backend}, engine = instant echo, {args.users} users, "
                  f"{where}")  # fmt: skip
            urls: tuple[list[str], list[str]] | None = None
            if args.workers:
                urls = ([], [])
                for side, target in zip(
                    urls, ("gptstudio.api:create_api", "request_overhead:unchecked_app"),
                    strict=True,
                ):  # fmt: skip
                    for _ in range(args.workers):
                        server, url = serve(target)
                        servers.append(server)
                        side.append(url)
            overhead = asyncio.run(measure(args, keys, urls))
        finally:
            for server in servers:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            echo.terminate()
            echo.wait(timeout=10)
            drop(database_url, admin_url)
    # At saturation one burst's p99 is noisy: a p99 under the target while the median request
    # is much slower with the checks on is luck, not a met target, so both must be under it.
    median, tail = overhead
    met = max(median, tail) <= TARGET_MS
    verdict = "met" if met else "MISSED"
    print(f"target: p99 overhead <= {TARGET_MS:.0f} ms at {args.concurrency} concurrent (and "
          f"p50 too): {verdict} (p99 {tail:.2f} ms, p50 {median:.2f} ms)")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

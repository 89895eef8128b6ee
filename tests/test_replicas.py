"""Two web replicas behind a real nginx, for real: two ``python -m gptstudio.run --no-worker
--no-engine`` processes on PostgreSQL and Redis (Reflex state in Redis), nginx from Debian with
``deploy/nginx.conf`` (sticky ``ip_hash``), started by the test as its own process, and the
project's engine as the chat server. A signed-in browser keeps working while the replica that
serves it is killed (its socket and pages move to the other) and after that replica is back;
a streamed answer comes through each replica and through nginx; a change committed through the
replica that serves a browser applies on the other at once: a creator's new paid-only tier takes
the assistant from a subscriber on both (402), made free it is back on both, and an API key
revoked on the API keys page is refused by both (401)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gptstudio.models import Role
from gptstudio.services import account, api_key
from gptstudio.settings import get_settings
from tests.conftest import ROOT, free_port
from tests.e2e.conftest import CHROMIUM, hydrated
from tests.engine.conftest import tiny_model, write_random_adapter  # noqa: F401 (a fixture)
from tests.factories import Published, publish_assistant

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PASSWORD = "correct horse battery"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # make test installs Debian's nginx-light
QUESTION = [{"role": "user", "content": "How often should I check for mites?"}]


@dataclass
class Replica:
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gptstudio.run", "--no-worker", "--no-engine",
                 "--no-migrate"],
                cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 900
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def nginx_config(folder: Path, port: int, upstreams: list[int]) -> Path:
    """``deploy/nginx.conf`` with this test's ports and files, inside an ``http`` block."""
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams)
    site = re.sub(r"    server web:3000[^\n]*\n", servers, site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = folder / "nginx.conf"
    config.write_text(
        f"{user}worker_processes 1;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} info;\nevents {{ worker_connections 512; }}\n"
        "http {\n"
        "    log_format upstream '$request_method $uri $status $upstream_addr';\n"
        f"    access_log {folder / 'access.log'} upstream;\n{temp}{site}\n}}\n"
    )
    return config


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Chromium for this test alone: Playwright's sync API keeps an event loop running in the main
    thread while it is open, which would break every asyncio test collected after this one."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def cluster(
    db: str,
    redis_url: str,
    tiny_model: Path,  # noqa: F811
    settings_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[str, list[Replica], Path, str, Published]]:
    """nginx, two replicas, an engine, an assistant published on it, a subscriber's key."""
    if not db.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL (SQLite is the one-process setup)")
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed: apt-get install -y nginx-light (make test does)")
    data = tmp_path / "data"
    adapter = write_random_adapter(tiny_model, data / "artifacts" / "v1" / "adapter", 7)
    engine_port, lb_port = free_port(), free_port()
    engine_log = (tmp_path / "engine.log").open("wb")
    engine = subprocess.Popen(
        [sys.executable, "-m", "engine", "--base", str(tiny_model), "--adapters-dir",
         str(data / "artifacts"), "--port", str(engine_port), "--threads", "1"],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=engine_log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPTSTUDIO_")}
    env.update(
        GPTSTUDIO_DATA_DIR=str(data), GPTSTUDIO_DATABASE_URL=db, GPTSTUDIO_REDIS_URL=redis_url,
        GPTSTUDIO_QUEUE_NAME=f"replicas-{os.getpid()}",
        GPTSTUDIO_ENGINE_URL=f"http://127.0.0.1:{engine_port}",
        GPTSTUDIO_PUBLIC_URL=f"http://localhost:{lb_port}", GPTSTUDIO_RESPONSE_CACHE_SECONDS="0",
        REFLEX_USE_SYSTEM_BUN="1", REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false", OMP_NUM_THREADS="1",
        # No prerendering (as deploy/app.Dockerfile sets): a replica's export prerenders "/"
        # against the public URL, and with another replica answering there it timed out
        # ("Prerender: Request failed for /") every time, so a replica never came up.
        REFLEX_SSR="false",
        PATH=f"{ROOT / '.tools/node_modules/.bin'}:{Path(sys.executable).parent}:{env['PATH']}",
    )  # fmt: skip
    replicas = [Replica(free_port(), {**env}, tmp_path / f"replica-{i}.log") for i in (0, 1)]
    for replica in replicas:
        replica.env["GPTSTUDIO_PORT"] = str(replica.port)
    folder = tmp_path / "nginx"
    folder.mkdir()
    config = nginx_config(folder, lb_port, [r.port for r in replicas])
    nginx = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(folder), "-g", "daemon off;"],
        stderr=(folder / "stderr.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        for replica in replicas:  # one after the other: both compile the same frontend folder
            replica.start()
        settings_env.setenv("GPTSTUDIO_ENGINE_URL", f"http://127.0.0.1:{engine_port}")
        settings_env.setenv("GPTSTUDIO_REDIS_URL", redis_url)
        get_settings.cache_clear()
        account.register(email="root@example.com", password=PASSWORD)
        cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
        published = publish_assistant(cy, adapter_path=str(adapter))
        sue = account.register(email="sue@example.com", password=PASSWORD)
        raw, _ = api_key.create_key(actor=sue, name="sdk", scopes=["chat", "models:read"])
        yield f"http://localhost:{lb_port}", replicas, folder, raw, published
    finally:
        for replica in replicas:
            replica.kill()
        for process in (nginx, engine):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        engine_log.close()


def stream(base: str, key: str, slug: str) -> str:
    """A streamed answer: the text of its chunks, which end with ``[DONE]``."""
    lines = []
    body = {"model": slug, "messages": QUESTION, "max_tokens": 8, "stream": True}
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
        json=body, timeout=120,
    ) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and '"content"' in "".join(lines), lines[-3:]
    return "".join(lines)


def served_by(folder: Path, path: str) -> list[str]:
    """The upstream (replica address) of each proxied request for ``path``, in order."""
    rows = (folder / "access.log").read_text().splitlines()
    return [row.split()[-1] for row in rows if row.split()[1] == path]


def sign_in(browser: Browser, url: str, email: str) -> tuple[Page, list[str]]:
    """A new browser context signed in as ``email`` through nginx; its page and its errors."""
    context = browser.new_context()
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/login")
    hydrated(page)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).not_to_have_url(re.compile(r"/login"))
    return page, errors


def closed_on(page: Page, folder: Path, replicas: list[Replica]) -> tuple[Replica, Replica]:
    """Close ``page`` (its context stays signed in): the replica its socket was on, and the other
    one (nginx logs a socket once it closes)."""
    before = len(served_by(folder, "/_event/"))
    page.close()
    deadline = time.monotonic() + 30
    while len(served_by(folder, "/_event/")) == before:
        assert time.monotonic() < deadline, "nginx logged no socket for the closed page"
        time.sleep(0.1)
    address = served_by(folder, "/_event/")[-1]
    through = next(r for r in replicas if address.endswith(f":{r.port}"))
    return through, next(r for r in replicas if r is not through)


def listed(base: str, key: str) -> list[str]:
    """The models ``key`` may use now, as ``GET /v1/models`` on ``base`` lists them."""
    response = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return [model["id"] for model in response.json()["data"]]


def test_a_signed_in_session_survives_its_replica_and_changes_reach_both(
    cluster: tuple[str, list[Replica], Path, str, Published],
    browser: Browser,
) -> None:
    url, replicas, folder, key, published = cluster
    slug = published.slug
    # A streamed answer through each replica, and through nginx.
    for base in [r.url for r in replicas] + [url]:
        stream(base, key, slug)

    page, errors = sign_in(browser, url, "sue@example.com")
    expect(page).to_have_url(re.compile(r"/home/?$"))  # a subscriber's start page
    first = served_by(folder, "/_event/")[-1]
    serving = next(r for r in replicas if first.endswith(f":{r.port}"))
    other = next(r for r in replicas if r is not serving)

    before = len(served_by(folder, "/_event/"))
    serving.kill()  # the socket drops; nginx sends the next connection to the other replica
    page.goto(f"{url}/account")
    expect(page).to_have_url(re.compile(r"/account/?$"))  # still signed in: no /login
    expect(page.locator("#logout")).to_be_visible()
    # nginx logs a socket when it closes: reload to close the page's, and look at every socket
    # logged since the kill (the killed replica's own socket may be logged after the new one).
    page.reload()
    expect(page.locator("#logout")).to_be_visible()
    deadline = time.monotonic() + 30
    while not any(a.endswith(f":{other.port}") for a in served_by(folder, "/_event/")[before:]):
        assert time.monotonic() < deadline, served_by(folder, "/_event/")[before:]
        time.sleep(0.1)

    serving.start()  # back, mid-session
    time.sleep(6)  # nginx's fail_timeout: the restarted replica takes traffic again
    page.goto(f"{url}/home")
    expect(page).to_have_url(re.compile(r"/home/?$"))
    expect(page.locator("#logout")).to_be_visible()
    assert {a.rsplit(":", 1)[1] for a in served_by(folder, "/_event/")} == {
        str(r.port) for r in replicas
    }, "the session's socket did not land on both replicas"

    # Both replicas serve Sue's key and have it, and her entitlement, cached.
    for replica in replicas:
        assert slug in listed(replica.url, key)

    # A new paid-only tier, saved by the creator through one replica: the assistant is gone for
    # Sue at once on the other replica and on that one (402 naming the pricing page).
    creator, creator_errors = sign_in(browser, url, "cy@example.com")
    plans = f"{url}/assistant/plans?id={published.assistant_id}"
    creator.goto(plans)
    hydrated(creator)
    for name, value in {"key": "pro", "name": "Professional", "monthly": "19"}.items():
        creator.fill(f"#plan-{name}", value)
    creator.click("#plan-save")
    expect(creator.locator("#plan-row-pro")).to_contain_text("19.00")
    through, other = closed_on(creator, folder, replicas)
    chat = {"model": slug, "messages": QUESTION, "max_tokens": 8}
    for replica in (other, through):
        assert slug not in listed(replica.url, key), replica.port
        refused = httpx.post(f"{replica.url}/v1/chat/completions", json=chat, timeout=60,
                             headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert refused.status_code == 402, refused.text
        assert f"/pricing?assistant={published.assistant_id}" in refused.text

    # The tier's price changed to free through a replica: the assistant is Sue's again on both.
    creator = creator.context.new_page()
    creator.on("pageerror", lambda error: creator_errors.append(str(error)))
    creator.goto(plans)
    hydrated(creator)
    creator.locator("#plan-row-pro .plan-edit").click()
    expect(creator.locator("#plan-name")).to_have_value("Professional")
    creator.fill("#plan-monthly", "")
    creator.click("#plan-save")
    expect(creator.locator("#plan-row-pro")).to_contain_text("free")
    context = creator.context
    through, other = closed_on(creator, folder, replicas)
    context.close()
    for replica in (other, through):
        assert slug in listed(replica.url, key), replica.port
    assert not creator_errors, creator_errors

    # Sue revokes her key on the API keys page, in the same session: refused at once by the
    # other replica and by the one that served the click (each had the key cached).
    page.goto(f"{url}/account/keys")
    expect(page.locator(".key-row")).to_have_count(1)
    page.locator(".key-row").get_by_role("button", name="Revoke").click()
    expect(page.locator(".key-row")).to_contain_text("revoked")
    through, other = closed_on(page, folder, replicas)
    for replica in (other, through):
        refused = httpx.get(f"{replica.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401, (replica.port, refused.text)
    assert not errors, errors

"""URL ingestion against pages served on 127.0.0.1 by the test: robots.txt, same-site crawl
limits, a page that never finishes, and the refusal of private addresses."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gptstudio.models import Role
from gptstudio.services import account, assistant, document, web_fetch
from gptstudio.settings import get_settings

PASSWORD = "correct horse battery"
ARTICLE = "<p>" + "Bees make honey from nectar collected on warm days. " * 20 + "</p>"
PAGES = {
    "/": "<html><body><h1>Home</h1>" + ARTICLE + '<a href="/a">A</a> <a href="/b#top">B</a> '
    '<a href="/private/x">P</a> <a href="http://example.org/">out</a></body></html>',
    "/a": "<html><body><h1>A</h1>" + ARTICLE + '<a href="/c">C</a></body></html>',
    "/b": "<html><body><h1>B</h1>" + ARTICLE + "</body></html>",
    "/c": "<html><body><h1>C</h1>" + ARTICLE + "</body></html>",
    "/private/x": "<html><body>secret</body></html>",
}
requested: list[str] = []


class Site(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        requested.append(self.path)
        if self.path == "/robots.txt":
            self._send(b"User-agent: *\nDisallow: /private\n", "text/plain")
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for _ in range(40):  # trickles bytes for 20 s at most, then stops by itself
                try:
                    self.wfile.write(b"<p>still loading</p>")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.5)
        elif self.path in PAGES:
            self._send(PAGES[self.path].encode(), "text/html; charset=utf-8")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def creator(
    db: str, run_tasks_inline: None, settings_env: pytest.MonkeyPatch
) -> tuple[account.UserPublic, int]:
    settings_env.setenv("GPTSTUDIO_CRAWL_DELAY_SECONDS", "0")
    settings_env.setenv("GPTSTUDIO_FETCH_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    return cy, assistant.create_assistant(actor=cy, name="Bees").id


def allow_local(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_ALLOW_PRIVATE_URLS", "true")
    get_settings.cache_clear()


def ingest(
    creator: tuple[account.UserPublic, int], url: str, crawl: bool
) -> list[document.DocumentInfo]:
    cy, bees = creator
    return asyncio.run(web_fetch.ingest(actor=cy, assistant_id=bees, url=url, crawl_site=crawl))


def test_private_addresses_are_refused_by_default(
    creator: tuple[account.UserPublic, int], site: str
) -> None:
    (failed,) = ingest(creator, site + "/", crawl=False)
    assert failed.status == "failed"
    assert "private or local address" in failed.error


def test_single_page(
    creator: tuple[account.UserPublic, int], site: str, settings_env: pytest.MonkeyPatch
) -> None:
    allow_local(settings_env)
    ingest(creator, site + "/b", crawl=False)
    cy, bees = creator
    (stored,) = document.list_documents(actor=cy, assistant_id=bees)
    assert stored.status == "parsed" and stored.source_url == site + "/b"
    assert stored.report["file_type"] == "html"


def test_crawl_follows_same_site_links_honours_robots_and_limits(
    creator: tuple[account.UserPublic, int], site: str, settings_env: pytest.MonkeyPatch
) -> None:
    allow_local(settings_env)
    settings_env.setenv("GPTSTUDIO_CRAWL_MAX_DEPTH", "1")
    get_settings.cache_clear()
    requested.clear()
    results = ingest(creator, site + "/", crawl=True)
    fetched = sorted(d.source_url for d in results if d.status != "failed")
    assert fetched == [site + "/", site + "/a", site + "/b"]  # /c is two links away
    refused = [d for d in results if d.status == "failed"]
    assert len(refused) == 1 and "robots.txt" in refused[0].error
    assert "/private/x" not in requested  # never requested, not only not stored
    assert not any(p.startswith("http") for p in requested)  # the external link is not followed


def test_page_limit(
    creator: tuple[account.UserPublic, int], site: str, settings_env: pytest.MonkeyPatch
) -> None:
    allow_local(settings_env)
    settings_env.setenv("GPTSTUDIO_CRAWL_MAX_PAGES", "2")
    get_settings.cache_clear()
    results = ingest(creator, site + "/", crawl=True)
    assert len([d for d in results if d.status != "failed"]) == 2


def test_a_page_that_never_finishes_is_cut_off(
    creator: tuple[account.UserPublic, int], site: str, settings_env: pytest.MonkeyPatch
) -> None:
    allow_local(settings_env)
    started = time.monotonic()
    (failed,) = ingest(creator, site + "/slow", crawl=False)
    assert failed.status == "failed" and "took too long" in failed.error
    assert time.monotonic() - started < 15


def test_bad_urls_are_refused(creator: tuple[account.UserPublic, int]) -> None:
    for url in ("ftp://example.org/file", "not a url", "javascript:alert(1)"):
        with pytest.raises(web_fetch.InvalidInput, match="http:// or https://"):
            ingest(creator, url, crawl=False)

"""URL ingestion: fetch one page or a small same-site crawl into documents.

Private, loopback and link-local addresses are refused (no server-side request forgery) unless
``GPTSTUDIO_ALLOW_PRIVATE_URLS`` is set; every redirect target is checked again. robots.txt is
honoured, requests are spaced by the crawl delay, and a page that never finishes is cut off by
a total deadline. Each fetched page becomes a document (parsed like an upload); each failure
becomes a failed document that says why.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from gptstudio.errors import DomainError, InvalidInput
from gptstudio.models.user import UserPublic
from gptstudio.services import document
from gptstudio.settings import get_settings

USER_AGENT = "GPTStudioBot/0.1 (+https://github.com/gptstudio)"
MAX_REDIRECTS = 5


class FetchRefused(DomainError):
    status_code = 422
    type = "invalid_request_error"
    code = "fetchrefused"


def check_url(url: str) -> str:
    """A normalised http(s) URL, or :class:`InvalidInput` saying what is wrong with it."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput("Enter a full web address starting with http:// or https://.")
    return urldefrag(url)[0]


def check_address(url: str) -> None:
    """Refuse hosts that resolve to private, loopback, link-local or reserved addresses."""
    host = urlsplit(url).hostname or ""
    if get_settings().allow_private_urls:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise FetchRefused(f"The host {host} cannot be found.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise FetchRefused(
                f"{host} resolves to a private or local address ({address}); only public web "
                "pages can be fetched."
            )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def same_site_links(base_url: str, html: str) -> list[str]:
    """Absolute http(s) links in ``html`` on the same host as ``base_url``, in order."""
    parser = _Links()
    parser.feed(html)
    host = urlsplit(base_url).netloc
    links = []
    for href in parser.hrefs:
        link = urldefrag(urljoin(base_url, href))[0]
        if urlsplit(link).scheme in {"http", "https"} and urlsplit(link).netloc == host:
            links.append(link)
    return list(dict.fromkeys(links))


@dataclass
class Page:
    url: str
    data: bytes
    content_type: str


@dataclass
class Crawl:
    fetched: list[Page] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class Fetcher:
    """One crawl's HTTP client: SSRF checks, robots.txt, politeness delay, size and time caps."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.settings = get_settings()
        self.robots: dict[str, RobotFileParser] = {}
        self.last_request = 0.0

    async def _wait_turn(self) -> None:
        delay = self.settings.crawl_delay_seconds - (time.monotonic() - self.last_request)
        if delay > 0:
            await asyncio.sleep(delay)
        self.last_request = time.monotonic()

    async def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.robots:
            robots = RobotFileParser()
            try:
                text = (await self._get(f"{origin}/robots.txt", max_bytes=500_000)).data
                robots.parse(text.decode("utf-8", "replace").splitlines())
            except (FetchRefused, httpx.HTTPError):
                robots.parse([])  # no robots.txt: everything is allowed
            self.robots[origin] = robots
        return self.robots[origin].can_fetch(USER_AGENT, url)

    async def _get(self, url: str, *, max_bytes: int) -> Page:
        deadline = time.monotonic() + self.settings.fetch_timeout_seconds
        for _ in range(MAX_REDIRECTS + 1):
            await asyncio.to_thread(check_address, url)
            await self._wait_turn()
            async with self.client.stream("GET", url) as response:
                if response.is_redirect and "location" in response.headers:
                    url = check_url(urljoin(url, response.headers["location"]))
                    continue
                if response.status_code >= 400:
                    raise FetchRefused(f"{url} answered HTTP {response.status_code}.")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise FetchRefused(f"{url} is larger than the upload limit.")
                    if time.monotonic() > deadline:
                        raise FetchRefused(f"{url} took too long to load; try again later.")
                return Page(url, bytes(body), response.headers.get("content-type", ""))
        raise FetchRefused(f"{url} redirects too many times.")

    async def fetch(self, url: str) -> Page:
        try:
            return await asyncio.wait_for(
                self._get(url, max_bytes=self.settings.max_upload_mb * 1024 * 1024),
                timeout=self.settings.fetch_timeout_seconds,
            )
        except TimeoutError:
            raise FetchRefused(f"{url} took too long to load; try again later.") from None
        except httpx.TimeoutException:
            raise FetchRefused(f"{url} took too long to answer; try again later.") from None
        except httpx.HTTPError as error:
            raise FetchRefused(f"{url} could not be fetched ({type(error).__name__}).") from None


async def crawl(start_url: str, *, depth: int, max_pages: int) -> Crawl:
    """Fetch ``start_url`` and same-site pages up to ``depth`` links away, at most ``max_pages``."""
    result, seen = Crawl(), {start_url}
    frontier = [(start_url, 0)]
    timeout = httpx.Timeout(get_settings().fetch_timeout_seconds)
    headers = {"User-Agent": USER_AGENT}
    async with httpx.AsyncClient(
        timeout=timeout, headers=headers, follow_redirects=False
    ) as client:
        fetcher = Fetcher(client)
        while frontier and len(result.fetched) < max_pages:
            url, level = frontier.pop(0)
            try:
                if not await fetcher.allowed(url):
                    raise FetchRefused(f"{url} is disallowed by the site's robots.txt.")
                page = await fetcher.fetch(url)
            except (FetchRefused, InvalidInput) as error:
                result.failed.append((url, str(error)))
                continue
            result.fetched.append(page)
            if level < depth and "html" in page.content_type:
                for link in same_site_links(page.url, page.data.decode("utf-8", "replace")):
                    if link not in seen:
                        seen.add(link)
                        frontier.append((link, level + 1))
    return result


def page_filename(url: str, content_type: str) -> str:
    parts = urlsplit(url)
    stem = (parts.netloc + parts.path).strip("/").replace("/", "_") or parts.netloc
    extension = ".pdf" if "pdf" in content_type else ".html" if "html" in content_type else ".txt"
    return stem[:150] + ("" if stem.endswith(extension) else extension)


async def ingest(
    *, actor: UserPublic, assistant_id: int, url: str, crawl_site: bool = False
) -> list[document.DocumentInfo]:
    """Fetch the page (or crawl the site) into the assistant's documents."""
    url = check_url(url)
    settings = get_settings()
    depth, max_pages = (
        (settings.crawl_max_depth, settings.crawl_max_pages) if crawl_site else (0, 1)
    )
    outcome = await crawl(url, depth=depth, max_pages=max_pages)
    stored = []
    for page in outcome.fetched:
        name = page_filename(page.url, page.content_type)
        try:
            stored.append(
                await document.store_bytes(
                    actor=actor,
                    assistant_id=assistant_id,
                    filename=name,
                    data=page.data,
                    source_url=page.url,
                )
            )
        except DomainError as error:
            outcome.failed.append((page.url, str(error)))
    for failed_url, reason in outcome.failed:
        stored.append(
            document.record_failure(
                actor=actor,
                assistant_id=assistant_id,
                name=failed_url,
                source_url=failed_url,
                error=reason,
            )
        )
    return stored

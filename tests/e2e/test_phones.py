"""Phones first (issue #20): every page of the README's list at 360×740 and 390×844 (Playwright's
"Galaxy S8" and "iPhone 13" profiles: touch, mobile viewport) fits the screen: no sideways
scrolling of the page, no interactive element lying over another, buttons and fields at least
44 px tall; the navigation is a menu; a subscriber chats by tap (send, stop, regenerate); the app
is installable (manifest, service worker) and opens offline with a clear offline state, then
reconnects by itself without losing a typed message; dark mode follows the system.

With GPTSTUDIO_SCREENSHOTS=<folder> (``docs/phone`` in the repository) every page is also saved
there as a PNG at 390 px, the README's pictures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.models import Assistant, ModelVersion, Plan, Role
from gptstudio.services import account, assistant
from gptstudio.settings import get_settings
from tests.e2e.conftest import (
    ADMIN,
    DEVICES,
    PASSWORD,
    BrowserErrors,
    RunningApp,
    hydrated,
    log_in,
)

pytestmark = pytest.mark.e2e

PHONES = ["Galaxy S8", "iPhone 13"]  # 360×740 and 390×844
SCREENSHOTS = os.environ.get("GPTSTUDIO_SCREENSHOTS", "")
CREATOR, SUBSCRIBER = "phoebe@example.com", "milo@example.com"

# What a visible interactive element is, and how each lies on the page.
LAYOUT = """() => {
  const interactive = 'a[href], button, input:not([type=hidden]), select, textarea, summary, '
    + '[role=button], [role=combobox], [role=checkbox], [role=switch], [role=radio], '
    + '[role=slider], [role=tab], [role=menuitem]';
  const shown = (el) => {
    if (el.closest('[aria-hidden=true]')) return false;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.opacity === '0') return false;
    const box = el.getBoundingClientRect();
    return box.width > 2 && box.height > 2;
  };
  const name = (el) => {
    const label = (el.id ? '#' + el.id : el.tagName.toLowerCase())
      + ' "' + (el.getAttribute('aria-label') || el.innerText || el.value || el.placeholder || '')
        .trim().slice(0, 30) + '"';
    return label;
  };
  // The chat's composer stays at the bottom: what scrolls under it is not a target there.
  // (Partly under it counts too: the rest of it is reached by scrolling up.)
  const composer = document.getElementById('chat-composer');
  const underComposer = (el) => {
    if (!composer || el.closest('#chat-composer')) return false;
    const box = el.getBoundingClientRect();
    const bar = composer.getBoundingClientRect();
    return box.bottom > bar.top + 1 && box.top < bar.bottom && box.right > bar.left
      && box.left < bar.right;
  };
  const all = [...document.querySelectorAll(interactive)].filter(shown)
    .filter((el) => !underComposer(el));
  // An element inside another (a button in a link, a field in its root) is one target.
  const targets = all.filter((el) => !all.some((other) => other !== el && other.contains(el)));
  const overlaps = [];
  for (let i = 0; i < targets.length; i++) {
    const a = targets[i].getBoundingClientRect();
    for (let j = i + 1; j < targets.length; j++) {
      const b = targets[j].getBoundingClientRect();
      const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (x > 1 && y > 1) overlaps.push(name(targets[i]) + ' over ' + name(targets[j]));
    }
  }
  // Touch targets: controls (not links inside running text) at least 44 px tall. A field is
  // tapped anywhere in its frame, a checkbox or radio button anywhere in its label.
  const controls = 'button, select, textarea, input, [role=button], [role=combobox], [role=tab]';
  const target = (el) => el.closest('.rt-TextFieldRoot, label') || el;
  const small = all
    .filter((el) => el.matches(controls))
    .filter((el) => target(el).getBoundingClientRect().height < 43.5)
    .map((el) => name(el) + ' ' + Math.round(target(el).getBoundingClientRect().height) + 'px');
  return {
    width: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    overlaps,
    small,
  };
}"""


@dataclass
class World:
    assistant_id: int
    slug: str


@pytest.fixture(scope="module")
def world(app: RunningApp, admin: str) -> Iterator[World]:
    """A creator with a published assistant (a real LoRA adapter of the app's tiny model) and
    a free plan, and a subscriber; made through the services on the running app's database."""
    from tests.engine.conftest import write_random_adapter

    with pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("GPTSTUDIO_")]:
            patch.delenv(name)
        patch.setenv("GPTSTUDIO_DATA_DIR", str(app.data_dir))
        get_settings.cache_clear()
        adapter = app.data_dir / "artifacts" / "phones-e2e" / "adapter"
        write_random_adapter(app.data_dir / "models" / "tiny-llama", adapter, seed=20)
        creator = account.register(email=CREATOR, password=PASSWORD, role=Role.creator)
        account.register(email=SUBSCRIBER, password=PASSWORD, role=Role.subscriber)
        made = assistant.create_assistant(actor=creator, name="Pocket Beekeeper")
        with session_scope() as session:
            version = ModelVersion(
                assistant_id=made.id, version=1, base_model="tiny", status="published",
                adapter_path=str(adapter),
            )  # fmt: skip
            session.add(version)
            session.flush()
            row = session.get(Assistant, made.id)
            assert row is not None
            row.is_published, row.current_model_version_id = True, version.id
            session.add(Plan(assistant_id=made.id, key="free", name="Free"))
            slug = session.exec(select(Assistant.slug).where(Assistant.id == made.id)).one()
        yield World(made.id, slug)
    get_settings.cache_clear()


def phone(browser: Browser, device: str, **options: Any) -> BrowserContext:
    """A fresh browser profile with the device's viewport, touch and mobile user agent."""
    profile = {k: v for k, v in DEVICES[device].items() if k != "default_browser_type"}
    context = browser.new_context(**{**profile, **options})
    context.set_default_timeout(20_000)
    return context


class Fits:
    """What went wrong on each page a test checked: every page is checked before it fails."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.problems: list[str] = []

    def __call__(self, page: Page, shot: str) -> None:
        self.problems += check_fits(page, self.device, shot)

    def done(self) -> None:
        assert not self.problems, "\n".join(self.problems)


def check_fits(page: Page, device: str, shot: str) -> list[str]:
    """The page as it has settled: within the screen's width, no overlapping targets, no small
    controls; saved as ``shot``.png at 390 px when screenshots are asked for."""
    page.wait_for_load_state("networkidle")
    layout = page.evaluate(LAYOUT)
    where = f"{shot} on {device}"
    problems = []
    if layout["scrollWidth"] > layout["width"]:
        problems.append(f"{where}: the page scrolls sideways ({layout['scrollWidth']} px)")
    if layout["overlaps"]:
        problems.append(f"{where}: overlapping: {layout['overlaps']}")
    if layout["small"]:
        problems.append(f"{where}: touch targets under 44 px: {layout['small']}")
    if SCREENSHOTS and DEVICES[device]["viewport"]["width"] == 390:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{shot}.png"), scale="css", animations="disabled")
    return problems


def visit(page: Page, url: str) -> None:
    page.goto(url)
    hydrated_page(page)


def hydrated_page(page: Page) -> None:
    """Connected and loaded: every page has the navigation bar; pages with a form wait for it."""
    expect(page.locator("a", has_text="GPT Studio").first).to_be_visible()
    if page.locator("button[type=submit]").count():
        hydrated(page)


def sign_in(page: Page, app: RunningApp, email: str) -> None:
    log_in(page, app, email)
    expect(page).not_to_have_url(re.compile(r"/login"))
    hydrated_page(page)


@pytest.mark.parametrize("device", PHONES)
def test_signed_out_pages_fit_a_phone(browser: Browser, app: RunningApp, device: str) -> None:
    context = phone(browser, device)
    page = context.new_page()
    fits = Fits(device)
    for route, shot in [
        ("/", "landing"),
        ("/signup", "signup"),
        ("/login", "login"),
        ("/forgot", "forgot"),
        ("/reset", "reset"),
        ("/verify", "verify"),
    ]:
        visit(page, f"{app.url}{route}")
        fits(page, shot)
    context.close()
    fits.done()


@pytest.mark.parametrize("device", PHONES)
def test_creator_pages_fit_a_phone_and_the_menu_navigates(
    browser: Browser, app: RunningApp, world: World, device: str
) -> None:
    context = phone(browser, device)
    page = context.new_page()
    fits = Fits(device)
    sign_in(page, app, CREATOR)
    # The bar's links are in the menu: who is signed in, the links, Log out.
    expect(page.locator("#nav-email")).to_be_hidden()
    page.locator("#nav-menu").tap()
    expect(page.locator("#menu-email")).to_have_text(CREATOR)
    fits(page, "menu")
    page.get_by_role("menuitem", name="Revenue").tap()
    expect(page).to_have_url(re.compile(r"/revenue/?$"))
    hydrated_page(page)
    fits(page, "revenue")
    n = world.assistant_id
    for route, shot in [
        ("/dashboard", "dashboard"),
        ("/account", "account"),
        ("/account/sessions", "account-sessions"),
        ("/account/keys", "account-keys"),
        (f"/assistant/data?id={n}", "assistant-data"),
        (f"/assistant/training?id={n}", "assistant-training"),
        (f"/assistant/settings?id={n}", "assistant-settings"),
        (f"/assistant/plans?id={n}", "assistant-plans"),
        (f"/assistant/widget?id={n}", "assistant-widget"),
    ]:
        visit(page, f"{app.url}{route}")
        fits(page, shot)
    page.locator("#nav-menu").tap()
    page.locator("#menu-logout").tap()
    expect(page).to_have_url(re.compile(r"/login"))
    context.close()
    fits.done()


@pytest.mark.parametrize("device", PHONES)
def test_admin_pages_fit_a_phone(
    browser: Browser, app: RunningApp, world: World, device: str
) -> None:
    context = phone(browser, device)
    page = context.new_page()
    fits = Fits(device)
    sign_in(page, app, ADMIN)
    for route, shot in [("/admin", "admin"), ("/admin/audit", "admin-audit")]:
        visit(page, f"{app.url}{route}")
        fits(page, shot)
    context.close()
    fits.done()


@pytest.mark.parametrize("device", PHONES)
def test_a_subscriber_chats_by_tap_on_a_phone(
    browser: Browser, app: RunningApp, world: World, device: str
) -> None:
    context = phone(browser, device)
    page = context.new_page()
    fits = Fits(device)
    sign_in(page, app, SUBSCRIBER)
    for route, shot in [
        ("/home", "home"),
        ("/usage", "usage"),
        (f"/pricing?assistant={world.assistant_id}", "pricing"),
    ]:
        visit(page, f"{app.url}{route}")
        fits(page, shot)

    visit(page, f"{app.url}/chat?assistant={world.slug}")
    fits(page, "chat-new")
    height = DEVICES[device]["viewport"]["height"]
    # The composer is at the bottom of the screen, even before the first message.
    composer = page.locator("#chat-composer").bounding_box()
    assert composer is not None and composer["y"] + composer["height"] > height - 80, composer

    page.locator("#new-chat-narrow").tap()  # this device's own conversation
    expect(page.locator("#chat-actions")).to_be_visible()
    page.locator("#chat-input").tap()
    page.keyboard.type("How many frames go in a nucleus hive?")
    page.locator("#send").tap()
    expect(page.locator(".user-message")).to_have_text("How many frames go in a nucleus hive?")
    stop = page.locator("#stop")
    expect(page.locator(".assistant-message").last).not_to_have_text("", timeout=60_000)
    if stop.is_visible():  # still streaming: a tap stops it (unless the answer ends first)
        with contextlib.suppress(PlaywrightTimeoutError):
            stop.tap(timeout=5_000)
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    expect(page.locator(".assistant-message")).to_have_count(1)

    page.locator("#regenerate").tap()
    expect(page.locator(".answer-choice")).to_have_text("2 / 2", timeout=90_000)
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    # The conversation's actions are one menu in the title row, not rows above the thread.
    expect(page.locator("#reset-context")).to_be_hidden()
    fits(page, "chat")
    page.locator("#chat-actions").tap()
    expect(page.get_by_role("menuitem", name="Export .md")).to_be_visible()
    fits(page, "chat-actions")
    page.get_by_role("menuitem", name="Rename…").tap()
    title = f"Nucleus frames on a {device}"
    page.locator("#rename-title").fill(title)
    page.locator("#rename-confirm").tap()
    expect(page.locator("#rename-title")).to_be_hidden()
    page.locator("#open-conversations").tap()
    expect(page.locator(".conversation-in-drawer", has_text=title)).to_have_count(1)
    fits(page, "chat-conversations")
    page.keyboard.press("Escape")
    context.close()
    fits.done()


def _png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", body[16:24])
    return width, height


def test_the_app_is_installable_and_opens_offline(
    browser: Browser, app: RunningApp, world: World, browser_errors: BrowserErrors
) -> None:
    """Manifest and icons as browsers require them for installing; the service worker controls
    the page; offline, the cached shell opens and says so, keeps the typed message, and the
    page reconnects by itself when the network is back."""
    context = phone(browser, "iPhone 13")
    page = context.new_page()
    fits = Fits("iPhone 13")
    sign_in(page, app, SUBSCRIBER)

    link = page.locator("link[rel=manifest]")
    manifest_url = app.url + (link.get_attribute("href") or "")
    response = page.request.get(manifest_url)
    assert response.ok
    manifest = json.loads(response.body())
    assert manifest["name"] == "GPT Studio" and manifest["short_name"]
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    sizes = set()
    for icon in manifest["icons"]:
        got = page.request.get(app.url + icon["src"])
        assert got.ok and got.headers["content-type"] == "image/png", icon
        width, height = _png_size(got.body())
        assert icon["sizes"] == f"{width}x{height}", icon
        sizes.add((width, icon["purpose"]))
    assert {(192, "any"), (512, "any"), (512, "maskable")} <= sizes
    expect(page.locator("meta[name=theme-color]").first).to_have_attribute(
        "content", manifest["theme_color"]
    )

    chat = f"{app.url}/chat?assistant={world.slug}"
    visit(page, chat)
    script = page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)")
    assert script == f"{app.url}/sw.js"
    # The first visit's files reach the cache (the worker took over after they loaded).
    page.wait_for_function(
        """() => caches.open('gptstudio-shell-v1').then(c => c.keys()).then(keys => {
            const urls = keys.map(k => new URL(k.url).pathname);
            return urls.includes('/chat') && urls.some(u => u.startsWith('/assets/'));
        })"""
    )
    page.reload()
    hydrated(page)
    assert page.evaluate("navigator.serviceWorker.controller !== null")

    # Offline: the page says so and keeps what is being typed.
    page.locator("#chat-input").tap()
    page.keyboard.type("Typed on the train")
    # The socket's failed reconnections while offline are the point of this test.
    browser_errors.expect(r"WebSocket connection to .* failed|ERR_INTERNET_DISCONNECTED")
    context.set_offline(True)
    offline = page.locator("#offline-banner")
    expect(offline).to_have_text(re.compile("You are offline"))
    fits(page, "offline")
    # Opened again without a network: the shell comes from the cache, the draft from the tab.
    page.reload()
    expect(page.locator("#chat-input")).to_be_visible()
    expect(offline).to_be_visible()
    expect(page.locator("#chat-input")).to_have_value("Typed on the train")

    # The network is back: the page reconnects by itself and the message is still there.
    context.set_offline(False)
    expect(offline).to_be_hidden()
    hydrated(page)
    expect(page.locator("#chat-input")).to_have_value("Typed on the train")
    page.locator("#send").tap()
    expect(page.locator(".user-message").last).to_have_text("Typed on the train")
    expect(page.locator("#send")).to_be_visible(timeout=90_000)
    expect(page.locator(".assistant-message").last).not_to_have_text("")
    context.close()
    fits.done()


def test_dark_mode_follows_the_system(browser: Browser, app: RunningApp, world: World) -> None:
    for scheme, dark in [("dark", True), ("light", False)]:
        context = phone(browser, "iPhone 13", color_scheme=scheme)
        page = context.new_page()
        fits = Fits("iPhone 13")
        sign_in(page, app, SUBSCRIBER)
        visit(page, f"{app.url}/chat?assistant={world.slug}")
        background = page.evaluate(
            "getComputedStyle(document.querySelector('.radix-themes')).backgroundColor"
        )
        channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
        assert (sum(channels) / 3 < 60) is dark, (scheme, background)
        if dark:
            fits(page, "chat-dark")
        context.close()
        fits.done()

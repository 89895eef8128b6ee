"""The embeddable widget in the browser: pages served by this test on other 127.0.0.1 ports embed
the ``<script>`` tag; an anonymous visitor chats with streamed answers, a subscriber signed by
the host site chats on their plan, and a non-allowed site or a tampered identity is refused with
a readable message. The creator's settings page makes the key, origins and secret."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import select

from gptstudio.db import session_scope, utcnow
from gptstudio.models import Assistant, ModelVersion, Plan, Role, Subscription, UsageEvent, User
from gptstudio.services import account, assistant, widget
from gptstudio.settings import get_settings
from tests.e2e.conftest import (
    DEVICES,
    PASSWORD,
    BrowserErrors,
    RunningApp,
    hydrated,
    log_in,
)

pytestmark = pytest.mark.e2e


@dataclass
class HostSite:
    """A plain web server on 127.0.0.1 standing in for a creator's own site."""

    pages: dict[str, str] = field(default_factory=dict)
    port: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve(site: HostSite) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = site.pages.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "not found").encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.port = int(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[HostSite, HostSite]]:
    """The creator's site (allowed) and another site (not allowed)."""
    allowed, other = HostSite(), HostSite()
    servers = [serve(allowed), serve(other)]
    yield allowed, other
    for server in servers:
        server.shutdown()


@dataclass
class Published:
    assistant_id: int
    key: str
    creator: account.UserPublic


@pytest.fixture(scope="module")
def app_db(app: RunningApp, admin: str) -> Iterator[None]:
    """This process's services work on the running app's database (and its secret key)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("GPTSTUDIO_")]:
            patch.delenv(name)
        patch.setenv("GPTSTUDIO_DATA_DIR", str(app.data_dir))
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def published(app: RunningApp, app_db: None, sites: tuple[HostSite, HostSite]) -> Published:
    """A published assistant served as a LoRA adapter of the app's tiny base model, with a free
    and a paid plan, the widget on and the allowed site in its allowlist."""
    from tests.engine.conftest import write_random_adapter

    adapter = app.data_dir / "artifacts" / "widget-e2e" / "adapter"
    write_random_adapter(app.data_dir / "models" / "tiny-llama", adapter, seed=11)
    creator = account.register(email="wren@example.com", password=PASSWORD, role=Role.creator)
    made = assistant.create_assistant(actor=creator, name="Hive Widget")
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
        session.add(Plan(assistant_id=made.id, key="pro", name="Pro", monthly_price_cents=900))
    widget.set_enabled(actor=creator, assistant_id=made.id, enabled=True)
    key = widget.set_origins(actor=creator, assistant_id=made.id, origins=sites[0].origin).key
    return Published(made.id, key, creator)


def tag(app: RunningApp, key: str, identity: str = "") -> str:
    signed = f' data-identity="{identity}"' if identity else ""
    return f'<script src="{app.url}/widget.js" data-key="{key}"{signed} async></script>'


def host_page(title: str, *body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>" + (
        "".join(body) + "</body></html>"
    )


def test_anonymous_visitor_chats_from_an_allowed_site(
    app: RunningApp, page: Page, published: Published, sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = sites
    allowed.pages["/"] = host_page("Hive shop", tag(app, published.key))
    page.goto(f"{allowed.origin}/")
    bubble = page.locator("#gptstudio-widget-button")
    bubble.click()
    panel = page.locator("#gptstudio-widget-panel")
    expect(panel).to_be_visible()
    chat = page.frame_locator("#gptstudio-widget-frame")
    expect(chat.locator("#who")).to_have_text("Guest · Free")
    chat.locator("#input").fill("When should I add a honey super?")
    chat.locator("#send").click()
    expect(chat.locator(".message.user")).to_have_text("When should I add a honey super?")
    answer = chat.locator(".message.assistant")
    expect(answer).not_to_have_class(re.compile("streaming"), timeout=60_000)
    expect(answer).to_have_text(re.compile(r"\S"))
    expect(chat.locator("#notice")).to_be_hidden()

    with session_scope() as session:
        events = session.exec(
            select(UsageEvent).where(UsageEvent.assistant_id == published.assistant_id)
        ).all()
    assert [(e.source, e.user_id) for e in events] == [("widget", None)]
    # The visitor id is the one the server issued to this iframe (its /session answer).
    assert widget.issued_visitor_id(published.assistant_id, events[0].visitor_id)

    bubble.click()  # a second click closes it
    expect(panel).to_be_hidden()


def test_a_site_that_is_not_allowed_gets_the_refusal(
    app: RunningApp,
    page: Page,
    published: Published,
    sites: tuple[HostSite, HostSite],
    browser_errors: BrowserErrors,
) -> None:
    # The refusals this test provokes: the browser logs each one.
    browser_errors.expect(r"Framing .* violates the following Content Security Policy")
    browser_errors.expect(r"status of 403 \(Forbidden\) \(at http://localhost:\d+/widget/")
    allowed, other = sites
    frame_url = f"{app.url}/widget/{published.key}/frame"
    bare = f'<iframe id="bare" src="{frame_url}" width="300" height="300"></iframe>'
    other.pages["/"] = host_page("Copycat", tag(app, published.key), bare)
    allowed.pages["/bare"] = host_page("Hive shop", bare)

    page.goto(f"{other.origin}/")
    page.locator("#gptstudio-widget-button").click()
    expect(page.locator("#gptstudio-widget-error")).to_contain_text(
        f"This chat widget is not allowed on {other.origin}"
    )
    expect(page.locator("#gptstudio-widget-frame")).to_have_count(0)
    # A hand-made iframe on that site is blocked by the frame's CSP (frame-ancestors)…
    page.wait_for_load_state("load")
    assert page.frame_locator("#bare").locator("#composer").count() == 0

    # …while the same iframe on the allowed site loads (the control for the check above).
    page.goto(f"{allowed.origin}/bare")
    expect(page.frame_locator("#bare").locator("#composer")).to_be_visible()
    expect(page.frame_locator("#bare").locator("#who")).to_have_text("Guest · Free")


def test_signed_subscriber_chats_on_their_plan_and_tampering_is_refused(
    app: RunningApp,
    page: Page,
    published: Published,
    sites: tuple[HostSite, HostSite],
    monkeypatch: pytest.MonkeyPatch,
    browser_errors: BrowserErrors,
) -> None:
    from gptstudio.pages.widget_settings import PYTHON_SNIPPET

    # The tampered identity is refused (401): the browser logs the refusal.
    browser_errors.expect(r"status of 401 \(Unauthorized\) \(at http://localhost:\d+/widget/")

    allowed, _ = sites
    sam = account.register(email="wanda@example.com", password=PASSWORD)
    with session_scope() as session:
        pro = session.exec(
            select(Plan).where(Plan.assistant_id == published.assistant_id, Plan.key == "pro")
        ).one()
        session.add(
            Subscription(
                user_id=sam.id, assistant_id=published.assistant_id, plan_id=pro.id, tier="pro",
                status="active", current_period_start=utcnow(),
                current_period_end=utcnow() + timedelta(days=30),
            )
        )  # fmt: skip
    secret = widget.reveal_secret(actor=published.creator, assistant_id=published.assistant_id)
    monkeypatch.setenv("GPTSTUDIO_WIDGET_SECRET", secret)
    snippet: dict[str, object] = {}
    exec(PYTHON_SNIPPET, snippet)  # the very snippet the settings page gives creators
    token = snippet["gptstudio_identity"]("wanda@example.com")  # type: ignore[operator]
    # Wanda linked this site to her account once (the consent window the widget offers).
    target = widget.resolve(published.key)
    widget.link_site(actor=sam, target=target, identity=str(token))
    email, expiry, signature = str(token).rsplit(".", 2)
    tampered = f"{email}.{int(expiry) + 600}.{signature}"
    allowed.pages["/member"] = host_page("Members", tag(app, published.key, str(token)))
    allowed.pages["/tampered"] = host_page("Members", tag(app, published.key, tampered))

    page.goto(f"{allowed.origin}/member")
    page.locator("#gptstudio-widget-button").click()
    chat = page.frame_locator("#gptstudio-widget-frame")
    expect(chat.locator("#who")).to_have_text("Signed in as wanda@example.com · Pro")
    chat.locator("#input").fill("How many frames in a deep box?")
    chat.locator("#input").press("Enter")
    answer = chat.locator(".message.assistant")
    expect(answer).not_to_have_class(re.compile("streaming"), timeout=60_000)
    expect(answer).to_have_text(re.compile(r"\S"))
    with session_scope() as session:
        sam_row = session.exec(select(User).where(User.email == "wanda@example.com")).one()
        mine = session.exec(select(UsageEvent).where(UsageEvent.user_id == sam_row.id)).all()
    assert [(e.source, e.assistant_id) for e in mine] == [("widget", published.assistant_id)]

    page.goto(f"{allowed.origin}/tampered")
    page.locator("#gptstudio-widget-button").click()
    chat = page.frame_locator("#gptstudio-widget-frame")
    expect(chat.locator("#notice")).to_contain_text("signature does not match")
    expect(chat.locator("#input")).to_be_disabled()


def test_creator_sets_up_the_widget_on_the_settings_page(
    app: RunningApp, page: Page, app_db: None, sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = sites
    creator = account.register(email="fern@example.com", password=PASSWORD, role=Role.creator)
    made = assistant.create_assistant(actor=creator, name="Fern Guide")
    log_in(page, app, "fern@example.com")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/assistant/widget?id={made.id}")
    expect(page.locator("#widget-state")).to_have_text("The widget is off")
    page.locator("#widget-enabled").click()
    expect(page.locator("#widget-state")).to_have_text("The widget is on")
    expect(page.locator("#no-origins")).to_be_visible()
    key = page.locator("#widget-key").inner_text()
    assert key.startswith("pk_")
    expect(page.locator("#script-tag")).to_contain_text(f'data-key="{key}"')

    hydrated(page)
    page.fill("#widget-origins", f"{allowed.origin}\nexample.com/shop")
    page.click("#save-origins")
    expect(page.locator("#form-error")).to_contain_text("Line 2: 'example.com/shop'")
    expect(page.locator("#widget-origins")).to_have_value(f"{allowed.origin}\nexample.com/shop")
    page.fill("#widget-origins", f"{allowed.origin}/")
    page.click("#save-origins")
    expect(page.locator("#form-error")).to_have_count(0)
    expect(page.locator("#no-origins")).to_have_count(0)
    assert widget.get_config(actor=creator, assistant_id=made.id).origins == [allowed.origin]

    page.click("#rotate-secret")
    shown = page.locator("#widget-secret")
    expect(shown).to_have_text(re.compile(r"^ws_"))
    assert shown.inner_text() == widget.reveal_secret(actor=creator, assistant_id=made.id)
    expect(page.locator("#python-snippet")).to_contain_text("hashlib.sha256")
    expect(page.locator("#node-snippet")).to_contain_text('createHmac("sha256"')

    page.click("#rotate-key")
    expect(page.locator("#widget-key")).not_to_have_text(key)
    assert widget.get_config(actor=creator, assistant_id=made.id).key != key


def test_the_look_is_previewed_live_saved_and_shown_on_the_site(
    app: RunningApp, page: Page, published: Published, sites: tuple[HostSite, HostSite]
) -> None:
    allowed, _ = sites
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, app, "wren@example.com")
    expect(page).to_have_url(re.compile(r"/dashboard/?$"))
    page.goto(f"{app.url}/assistant/widget?id={published.assistant_id}")
    hydrated(page)
    launcher = page.locator("#preview-launcher")
    expect(launcher).to_have_css("background-color", "rgb(79, 70, 229)")  # the default
    expect(page.locator("#preview-title")).to_have_text("Hive Widget")
    expect(page.locator("#preview-greeting")).to_have_count(0)

    # The preview follows each change before anything is saved.
    page.fill("#look-color", "#0e7c3a")
    expect(launcher).to_have_css("background-color", "rgb(14, 124, 58)")
    page.fill("#look-title", "Ask the beekeeper")
    expect(page.locator("#preview-title")).to_have_text("Ask the beekeeper")
    page.fill("#look-greeting", "Questions about hives?")
    expect(page.locator("#preview-greeting")).to_have_text("Questions about hives?")
    page.click("#look-position-is-left")
    expect(page.locator("#look-preview")).to_have_attribute("data-position", "left")
    page.click("#look-launcher-is-text")
    page.fill("#look-launcher-text", "Ask us")
    expect(launcher).to_have_text("Ask us")
    assert widget.get_config(actor=published.creator, assistant_id=published.assistant_id).look == (
        widget.WidgetLook()
    )
    page.fill("#look-color", "green")  # not a colour: refused on save, the preview keeps one
    page.click("#save-look")
    expect(page.locator("#form-error")).to_contain_text("colour must look like #4f46e5")
    page.fill("#look-color", "#0e7c3a")
    page.click("#save-look")
    expect(page.locator("#form-error")).to_have_count(0)
    expect(page.get_by_text("The widget's look is saved")).to_be_visible()
    saved = widget.get_config(actor=published.creator, assistant_id=published.assistant_id).look
    assert saved == widget.WidgetLook(
        color="#0e7c3a", title="Ask the beekeeper", greeting="Questions about hives?",
        position="left", launcher="text", launcher_text="Ask us",
    )  # fmt: skip
    assert errors == []

    # The creator's site shows the saved look: widget.js and the frame read it.
    allowed.pages["/look"] = host_page("Hive shop", tag(app, published.key))
    page.goto(f"{allowed.origin}/look")
    button = page.locator("#gptstudio-widget-button")
    expect(button).to_have_text("Ask us")
    expect(button).to_have_css("background-color", "rgb(14, 124, 58)")
    expect(button).to_have_css("left", "20px")
    greeting = page.locator("#gptstudio-widget-greeting")
    expect(greeting).to_contain_text("Questions about hives?")
    button.click()
    expect(greeting).to_have_count(0)  # opening the chat puts the greeting away
    panel = page.locator("#gptstudio-widget-panel")
    expect(panel).to_have_css("left", "20px")
    chat = page.frame_locator("#gptstudio-widget-frame")
    expect(chat.locator("#title")).to_have_text("Ask the beekeeper")
    expect(chat.locator("header")).to_have_css("background-color", "rgb(14, 124, 58)")
    expect(chat.locator("#who")).to_have_text("Guest · Free")
    assert errors == []


def test_the_widget_opens_with_the_welcome_and_conversation_starters(
    app: RunningApp, page: Page, published: Published, sites: tuple[HostSite, HostSite]
) -> None:
    from gptstudio.services import assistant_settings

    allowed, _ = sites
    assistant_settings.update_welcome(
        actor=published.creator, assistant_id=published.assistant_id,
        welcome_message="Hello from the hive!", starters=["When do bees swarm?", "Honey & wax?"],
    )  # fmt: skip
    try:
        allowed.pages["/welcome"] = host_page("Hive shop", tag(app, published.key))
        page.goto(f"{allowed.origin}/welcome")
        page.locator("#gptstudio-widget-button").click()
        chat = page.frame_locator("#gptstudio-widget-frame")
        expect(chat.locator("#who")).to_have_text("Guest · Free")
        expect(chat.locator(".message.welcome")).to_have_text("Hello from the hive!")
        expect(chat.locator(".starter")).to_have_text(["When do bees swarm?", "Honey & wax?"])
        chat.locator(".starter", has_text="Honey & wax?").click()
        expect(chat.locator(".message.user")).to_have_text("Honey & wax?")
        expect(chat.locator(".starter")).to_have_count(0)  # the conversation has begun
        answer = chat.locator(".message.assistant:not(.welcome)")
        expect(answer).not_to_have_class(re.compile("streaming"), timeout=60_000)
        expect(answer).to_have_text(re.compile(r"\S"))
        expect(chat.locator(".message.welcome")).to_be_visible()  # the greeting stays
    finally:
        assistant_settings.update_welcome(
            actor=published.creator, assistant_id=published.assistant_id, welcome_message="",
            starters=[],
        )  # fmt: skip


def test_on_a_phone_the_chat_panel_takes_the_whole_screen(
    app: RunningApp, browser: Browser, published: Published, sites: tuple[HostSite, HostSite]
) -> None:
    """At 360×740 (Playwright's "Galaxy S8": touch, mobile viewport) the open panel is the whole
    screen, the launcher no longer lies over its composer, and the frame's × closes it."""
    allowed, _ = sites
    # A site made for phones says so (without this, a phone lays it out 980 px wide).
    viewport = '<meta name="viewport" content="width=device-width, initial-scale=1">'
    allowed.pages["/phone"] = host_page("Hive shop", viewport, tag(app, published.key))
    profile = {k: v for k, v in DEVICES["Galaxy S8"].items() if k != "default_browser_type"}
    context = browser.new_context(**profile)
    page = context.new_page()
    page.goto(f"{allowed.origin}/phone")
    launcher = page.locator("#gptstudio-widget-button")
    launcher.tap()
    panel = page.locator("#gptstudio-widget-panel")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box == {"x": 0, "y": 0, "width": 360, "height": 740}, box
    expect(launcher).to_be_hidden()
    chat = page.frame_locator("#gptstudio-widget-frame")
    expect(chat.locator("#who")).to_have_text("Guest · Free")
    chat.locator("#input").tap()
    page.keyboard.type("Is it too cold to open the hive?")
    chat.locator("#send").tap()
    answer = chat.locator(".message.assistant")
    expect(answer).not_to_have_class(re.compile("streaming"), timeout=60_000)
    for control in ("#close", "#send"):  # touch targets of 44 px
        size = chat.locator(control).bounding_box()
        assert size is not None and size["height"] >= 44 and size["width"] >= 44, (control, size)
    chat.locator("#close").tap()
    expect(panel).to_be_hidden()
    expect(launcher).to_be_visible()
    context.close()

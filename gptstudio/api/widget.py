"""Embeddable widget routes: the loader script, the iframe page, its config and its chat endpoint.

* ``GET /widget.js``: the loader a creator's site includes (``assets/widget.js``), cached long and
  loadable from any origin.
* ``GET /widget/{key}/config``: called by the loader from the host page (CORS); refuses an origin
  the assistant does not allow, with a message the loader shows instead of the chat.
* ``GET /widget/{key}/frame``: the chat page inside the iframe, with
  ``Content-Security-Policy: frame-ancestors <the assistant's allowed origins>``.
* ``POST /widget/{key}/session`` and ``POST /widget/{key}/chat``: called by the iframe with the
  parent page's origin (learnt from the ``postMessage`` handshake), the visitor id and, when the
  host site signs one, the end-user identity; chat answers stream as server-sent events.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from engine.protocol import Event, Finish, TextDelta, sse
from gptstudio.errors import DomainError, PaymentRequired, RateLimited
from gptstudio.services import access, account, completion, quota, widget
from gptstudio.services.entitlements import entitlement
from gptstudio.settings import get_settings

router = APIRouter()
ASSETS = Path(__file__).resolve().parents[2] / "assets"
SCRIPT_TYPE = "text/javascript; charset=utf-8"
DEFAULT_MAX_TOKENS = 512
_FRAME = "widget-frame.html"
# A refusal (it names the site, nothing more) is readable by any page, so the loader can show
# it; the config itself only by the listed site that asked. Never with credentials.
REFUSAL_CORS = {"Access-Control-Allow-Origin": "*", "Vary": "Origin"}


@lru_cache(maxsize=8)
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


# --- static parts ----------------------------------------------------------------------------


@router.get("/widget.js", include_in_schema=False)
def loader_script() -> Response:
    return Response(
        _asset("widget.js"),
        media_type=SCRIPT_TYPE,
        headers={
            "Cache-Control": "public, max-age=86400, stale-while-revalidate=604800",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "Access-Control-Allow-Origin": "*",
        },
    )


@router.get("/widget/frame.js", include_in_schema=False)
def frame_script() -> Response:
    return Response(
        _asset("widget-frame.js"),
        media_type=SCRIPT_TYPE,
        headers={"Cache-Control": "public, max-age=3600"},
    )


# --- errors ----------------------------------------------------------------------------------


def _error_json(error: DomainError, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "message": str(error),
        "code": getattr(error, "code", None) or type(error).__name__.lower(),
        "status": error.status_code,
    }
    # The error's own headers (a quota refusal's x-ratelimit-*), then the route's.
    extra = {**(getattr(error, "headers", None) or {}), **(headers or {})}
    if isinstance(error, (PaymentRequired, RateLimited)) and error.upgrade_url:
        body["upgrade_url"] = error.upgrade_url
    if isinstance(error, RateLimited):
        body["retry_after"] = error.retry_after
        extra["Retry-After"] = str(error.retry_after)
    return JSONResponse({"error": body}, status_code=error.status_code, headers=extra)


def _refusal_page(message: str, status: int) -> HTMLResponse:
    """A plain page with the reason; it may show inside any frame (it holds nothing)."""
    nonce = secrets.token_urlsafe(16)
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Chat unavailable</title>"
        f"<style nonce='{nonce}'>body{{font:15px/1.5 system-ui,sans-serif;margin:0;"
        "padding:24px;color:#3b1212;background:#fff5f5}</style></head><body>"
        f"<p id='widget-refused' role='alert'>{html.escape(message)}</p></body></html>"
    )
    csp = f"default-src 'none'; style-src 'nonce-{nonce}'; frame-ancestors *; base-uri 'none'"
    return HTMLResponse(
        page,
        status_code=status,
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"},
    )


def _page_origin(request: Request) -> str:
    """The calling page's origin: ``Origin``, else the ``Referer``'s scheme and host."""
    origin = request.headers.get("origin", "")
    if origin:
        return origin
    referer = urlsplit(request.headers.get("referer", ""))
    return f"{referer.scheme}://{referer.netloc}" if referer.scheme and referer.netloc else ""


def _same_site(request: Request, origin: str) -> bool:
    """A request from the app's own pages (the iframe), by the Host it reached or the public URL
    (behind a proxy that rewrites Host)."""
    public = urlsplit(get_settings().base_url)
    return origin.split("://", 1)[-1] == request.headers.get("host", "") or origin == (
        f"{public.scheme}://{public.netloc}"
    )


def _check_embedding(request: Request, target: widget.WidgetTarget, claimed: str) -> str:
    """The embedding page's origin must be allowed. A call made straight from another site (not
    from the iframe, which is same-origin with the app) must come from an allowed site too."""
    caller = request.headers.get("origin", "")
    if caller and not _same_site(request, caller):
        widget.check_origin(target, caller)
    return widget.check_origin(target, claimed)


# --- the loader's config ---------------------------------------------------------------------


@router.get("/widget/{key}/config", include_in_schema=False)
async def config(key: str, request: Request) -> JSONResponse:
    try:
        target = await asyncio.to_thread(widget.resolve, key)
        widget.check_origin(target, _page_origin(request))
    except DomainError as error:
        return _error_json(error, REFUSAL_CORS)
    body = {
        "name": target.name,
        "frame_url": f"/widget/{target.key}/frame",
        "look": target.look_json(),
    }
    headers = {"Vary": "Origin", "Cache-Control": "no-store"}
    if request.headers.get("origin"):
        headers["Access-Control-Allow-Origin"] = request.headers["origin"]  # checked above
    return JSONResponse(body, headers=headers)


# --- the iframe page -------------------------------------------------------------------------


def _frame_html(target: widget.WidgetTarget, nonce: str) -> str:
    settings = {
        "key": target.key,
        "name": target.name,
        "sessionUrl": f"/widget/{target.key}/session",
        "chatUrl": f"/widget/{target.key}/chat",
        "origins": list(target.origins),
        "look": target.look_json(),
        "welcome": target.welcome_message,
        "starters": list(target.starters),
    }
    # Inside <script type="application/json">: no "<", ">" or "&" may end the element early.
    data = json.dumps(settings).replace("<", "\\u003c").replace(">", "\\u003e")
    data = data.replace("&", "\\u0026")
    values = {"NONCE": nonce, "TITLE": html.escape(target.look_json()["title"]), "CONFIG": data}
    # One pass, so that a value that happens to contain a placeholder is left alone.
    return re.sub(r"__(NONCE|TITLE|CONFIG)__", lambda m: values[m.group(1)], _asset(_FRAME))


@router.get("/widget/{key}/frame", include_in_schema=False)
async def frame(key: str) -> HTMLResponse:
    try:
        target = await asyncio.to_thread(widget.resolve, key)
    except DomainError as error:
        return _refusal_page(str(error), error.status_code)
    nonce = secrets.token_urlsafe(16)
    csp = (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'; "
        f"frame-ancestors {widget.frame_ancestors(target)}; base-uri 'none'; "
        "form-action 'none'; object-src 'none'"
    )
    return HTMLResponse(
        _frame_html(target, nonce),
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"},
    )


# --- the iframe's calls ----------------------------------------------------------------------


class VisitorIn(BaseModel):
    parent_origin: str = Field(default="", max_length=300)
    visitor_id: str = Field(default="", max_length=80)
    identity: str = Field(default="", max_length=700)


class WidgetMessageIn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class WidgetChatIn(VisitorIn):
    messages: list[WidgetMessageIn] = Field(max_length=completion.MAX_MESSAGES)
    max_tokens: int | None = None


def _who(
    request: Request, key: str, body: VisitorIn, *, issue: bool = False
) -> tuple[widget.WidgetTarget, widget.Visitor]:
    """The widget and who chats in it. ``issue``: the session call, which replaces a visitor id
    this server did not issue for this widget with a new one (chat refuses such an id)."""
    target = widget.resolve(key)
    _check_embedding(request, target, body.parent_origin)
    visitor_id = widget.session_visitor_id(target, body.visitor_id) if issue else body.visitor_id
    return target, widget.visitor(target, identity=body.identity, visitor_id=visitor_id)


def _address(request: Request) -> str:
    return access.client_address(
        peer=request.client.host if request.client else "",
        forwarded_for=request.headers.get("x-forwarded-for", ""),
    )


@router.post("/widget/{key}/session", include_in_schema=False)
async def session(key: str, body: VisitorIn, request: Request) -> JSONResponse:
    """Who the iframe chats as, checked before the first question (clear errors early)."""
    try:
        target, who = await asyncio.to_thread(_who, request, key, body, issue=True)
        granted = await asyncio.to_thread(
            entitlement, user_id=who.user_id, assistant_id=target.assistant_id
        )
    except DomainError as error:
        return _error_json(error)
    return JSONResponse(
        {
            "assistant": target.name,
            "visitor_id": who.visitor_id,  # the iframe keeps it (new when its own was not ours)
            "signed_in_as": who.email or None,
            "plan": granted.plan_name,
            "allowed": granted.allowed,
            "message": "" if granted.allowed else granted.reason,
            "upgrade_url": "" if granted.allowed else granted.upgrade_url,
            # A signed identity not linked yet (or naming no account: the same answer).
            "link_url": _link_url(target, body.identity) if who.link_needed else "",
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/widget/{key}/chat", include_in_schema=False, response_model=None)
async def widget_chat(
    key: str, body: WidgetChatIn, request: Request
) -> StreamingResponse | JSONResponse:
    """The answer as server-sent events: ``{"type": "delta", "content": …}`` chunks, then
    ``{"type": "done", …}``, or ``{"type": "error", "message": …}`` if the engine fails midway."""
    context = completion.RequestContext()
    try:
        target, who = await asyncio.to_thread(_who, request, key, body)
        if who.user_id is None:  # all guests of one address share a limit
            await quota.admit_address_async(
                assistant_id=target.assistant_id, address=_address(request)
            )
        key = f"user:{who.user_id}" if who.user_id else f"visitor:{who.visitor_id}"
        model = await asyncio.to_thread(completion.served_for_user, slug=target.slug, key=key)
        limit = min(DEFAULT_MAX_TOKENS, get_settings().chat_max_tokens)
        params = completion.Params(max_tokens=min(body.max_tokens or limit, limit))  # widget cap
        events = completion.stream_completion(
            model=model, messages=[m.model_dump() for m in body.messages], params=params,
            user_id=who.user_id, source="widget", visitor_id=who.visitor_id, context=context,
        )  # fmt: skip
        # Refusals (402, 429, bad input) surface here, before any byte.
        first: Event | None = await anext(events)
    except StopAsyncIteration:
        first = None
        events = _nothing()
    except DomainError as error:
        return _error_json(error, context.headers())
    headers = {**context.headers(), "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _events(first, events), media_type="text/event-stream", headers=headers
    )


async def _nothing() -> AsyncGenerator[Event, None]:
    return
    yield  # pragma: no cover  (makes this an async generator)


async def _events(first: Event | None, rest: AsyncGenerator[Event, None]) -> AsyncIterator[str]:
    finish: Finish | None = None
    event = first
    try:
        while True:
            if isinstance(event, TextDelta) and event.text:
                yield sse({"type": "delta", "content": event.text})
            elif isinstance(event, Finish):
                finish = event
            try:
                event = await anext(rest)
            except StopAsyncIteration:
                break
    except DomainError as error:
        yield sse({"type": "error", "message": str(error), "status": error.status_code})
        return
    finally:
        await rest.aclose()  # the engine request ends and the usage is metered now
    usage = finish.usage.to_dict() if finish and finish.usage else {}
    yield sse(
        {"type": "done", "finish_reason": finish.reason if finish else "stop", "usage": usage}
    )


# --- linking a signed identity to the user's account (one-time consent) -----------------------


def _link_url(target: widget.WidgetTarget, identity: str) -> str:
    return f"{get_settings().base_url}/widget/{target.key}/link?{urlencode({'identity': identity})}"


def _plain_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small page of GPT Studio's own (never framed); ``body`` is already escaped HTML."""
    nonce = secrets.token_urlsafe(16)
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style nonce='{nonce}'>body{{font:15px/1.5 system-ui,sans-serif;max-width:32em;"
        "margin:48px auto;padding:0 16px}button{font:inherit;padding:6px 14px}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return HTMLResponse(
        page, status_code=status,
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"},
    )  # fmt: skip


@router.get("/widget/{key}/link", include_in_schema=False)
async def link_page(key: str, identity: str = "") -> HTMLResponse:
    """The consent page the widget opens in a new window. It asks, and links nothing: the
    session cookie (SameSite=Strict) is not sent on a navigation another site started, so the
    confirmation is a form posted from this page."""
    try:
        target = await asyncio.to_thread(widget.resolve, key)
    except DomainError as error:
        return _plain_page("Chat unavailable", f"<p>{html.escape(str(error))}</p>", 403)
    form = (
        f"<p>Let the chat of <b>{html.escape(target.name)}</b> on "
        f"{html.escape(', '.join(target.origins) or 'its site')} use your GPT Studio account "
        "(your plan and your usage) whenever that site says you are signed in there.</p>"
        f"<form method='post'><input type='hidden' name='identity' "
        f"value='{html.escape(identity, quote=True)}'>"
        "<button type='submit' id='link-confirm'>Link my account</button></form>"
        "<p>You can do this once per assistant. Not you? Close this window.</p>"
    )
    return _plain_page("Link your account", form)


@router.post("/widget/{key}/link", include_in_schema=False, response_model=None)
async def link_confirm(key: str, request: Request) -> HTMLResponse:
    """Link the signed-in user (session cookie; the Origin check refuses other sites) to this
    widget, if the signed identity names them. Not signed in: log in, then come back here."""
    form = await request.form()
    identity = str(form.get("identity", ""))[:700]
    here = f"/widget/{key}/link?{urlencode({'identity': identity})}"
    token = request.cookies.get(account.SESSION_COOKIE, "")
    try:
        user = await asyncio.to_thread(account.user_for_session, token=token)
    except DomainError:
        return _plain_page(
            "Sign in first",
            "<p id='link-signin'>You are not signed in to GPT Studio in this browser. "
            "<a href='/login' target='_blank' rel='noopener'>Sign in</a>, then "
            f"<a href='{html.escape(here, quote=True)}'>come back to link your account</a>.</p>",
            401,
        )
    try:
        target = await asyncio.to_thread(widget.resolve, key)
        await asyncio.to_thread(widget.link_site, actor=user, target=target, identity=identity)
    except DomainError as error:
        return _plain_page("Not linked", f"<p>{html.escape(str(error))}</p>", error.status_code)
    return _plain_page(
        "Account linked",
        f"<p id='link-done'>The chat of {html.escape(target.name)} now uses your account "
        f"{html.escape(user.email)}. Close this window and reload the chat.</p>",
    )

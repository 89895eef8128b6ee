"""Sign-in routes: single sign-on (``/auth/oidc/{provider}/login`` and ``.../callback``) and the
session cookie (``/auth/session`` sets it after a sign-in, ``/auth/logout`` clears it).

The session cookie is HttpOnly (page script never reads it), SameSite=Strict, and Secure in
production; only these HTTP responses set it. The Reflex backend reads it from the socket's
handshake, so a sign-in made on a page ends with a navigation here."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gptstudio.errors import DomainError
from gptstudio.services import access, account, mfa, oidc
from gptstudio.settings import get_settings

router = APIRouter(prefix="/auth")
STATE_COOKIE = "gptstudio_oidc"
LINK_COOKIE = oidc.LINK_COOKIE


def _client(request: Request) -> access.Client:
    ip = access.client_address(
        peer=request.client.host if request.client else "",
        forwarded_for=request.headers.get("x-forwarded-for", ""),
    )
    return access.Client(ip=ip, user_agent=request.headers.get("user-agent", ""))


def _secure() -> bool:
    settings = get_settings()
    return settings.is_production or settings.base_url.startswith("https://")


def set_session_cookie(response: Response, token: str) -> None:
    """The session cookie: never readable by page script, never sent cross-site."""
    response.set_cookie(
        account.SESSION_COOKIE, token, path="/", httponly=True, samesite="strict",
        secure=_secure(),
    )  # fmt: skip


def _to_login(**params: str) -> RedirectResponse:
    query = urlencode({key: value for key, value in params.items() if value})
    response = RedirectResponse(f"/login?{query}" if query else "/login", status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    return response


@router.get("/oidc/{name}/login")
async def login(name: str, next: str = "") -> RedirectResponse:
    try:
        provider = oidc.get_provider(name)
        url, state = await oidc.begin(provider, next_path=next)
    except DomainError as error:
        return _to_login(error=str(error), next=oidc.safe_next(next))
    response = RedirectResponse(url, status_code=303)
    # Lax: the browser must send it back on the provider's top-level redirect to the callback.
    response.set_cookie(
        STATE_COOKIE, state, max_age=oidc.STATE_SECONDS, path="/auth/oidc", httponly=True,
        samesite="lax", secure=_secure(),
    )  # fmt: skip
    return response


@router.get("/oidc/{name}/callback")
async def callback(
    request: Request, name: str, code: str = "", state: str = "", error: str = ""
) -> RedirectResponse:
    cookie = request.cookies.get(STATE_COOKIE, "")
    next_path = oidc.next_of(cookie)
    if error:
        return _to_login(error=f"Sign-in was cancelled or refused ({error[:80]}).", next=next_path)
    try:
        provider = oidc.get_provider(name)
        profile = await oidc.finish(provider, code=code, state=state, cookie=cookie)
        outcome = await asyncio.to_thread(
            oidc.sign_in, profile, client=_client(request),
            previous_token=request.cookies.get(account.SESSION_COOKIE, ""),
        )  # fmt: skip
    except DomainError as failure:
        return _to_login(error=str(failure), next=next_path)
    if outcome.link_ticket:
        # The ticket stays out of the URL (history, logs, Referer): a short-lived HttpOnly
        # cookie that the login page's server side reads; ``sso=link`` only says to look.
        response = _to_login(sso="link", next=next_path)
        response.set_cookie(
            LINK_COOKIE, outcome.link_ticket, max_age=oidc.STATE_SECONDS, path="/",
            httponly=True, samesite="lax", secure=_secure(),
        )  # fmt: skip
        return response
    if outcome.mfa_ticket:
        return _to_login(mfa=outcome.mfa_ticket, next=next_path)
    assert outcome.user is not None
    landing = await asyncio.to_thread(mfa.landing_path, outcome.user)
    # MFA set-up, when policy requires it, comes before the page the user asked for.
    target = next_path if next_path and landing == mfa.HOME_BY_ROLE[outcome.user.role] else landing
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    response.delete_cookie(LINK_COOKIE, path="/")
    set_session_cookie(response, outcome.token)
    return response


@router.get("/session", include_in_schema=False)
async def session_cookie(grant: str = "", next: str = "") -> RedirectResponse:
    """Trade a one-time sign-in grant (a minute old at most) for the session cookie, then go on
    to ``next`` (a same-site path) with a fresh page, whose socket carries the cookie."""
    try:
        token = await asyncio.to_thread(account.redeem_cookie_grant, grant=grant)
    except DomainError as error:
        return _to_login(error=str(error))
    response = RedirectResponse(oidc.safe_next(next) or "/", status_code=303)
    set_session_cookie(response, token)
    return response


@router.get("/logout", include_in_schema=False)
async def logout(request: Request) -> RedirectResponse:
    """End the cookie's session and clear the cookie. Only from the app's own pages (a link on
    another site must not sign people out)."""
    reason = "account_deleted" if request.query_params.get("reason") == "account_deleted" else ""
    response = RedirectResponse(f"/login?reason={reason or 'signed_out'}", status_code=303)
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return response
    token = request.cookies.get(account.SESSION_COOKIE, "")
    await asyncio.to_thread(account.logout, token=token)
    response.delete_cookie(account.SESSION_COOKIE, path="/", samesite="strict", secure=_secure())
    return response

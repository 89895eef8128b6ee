"""Single sign-on routes: ``/auth/oidc/{provider}/login`` and ``.../callback``."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from gptstudio.errors import DomainError
from gptstudio.services import access, account, mfa, oidc
from gptstudio.settings import get_settings

router = APIRouter(prefix="/auth/oidc")
STATE_COOKIE = "gptstudio_oidc"
LINK_COOKIE = oidc.LINK_COOKIE


def _client(request: Request) -> access.Client:
    ip = access.client_address(
        peer=request.client.host if request.client else "",
        forwarded_for=request.headers.get("x-forwarded-for", ""),
    )
    return access.Client(ip=ip, user_agent=request.headers.get("user-agent", ""))


def _secure() -> bool:
    return get_settings().base_url.startswith("https://")


def _to_login(**params: str) -> RedirectResponse:
    query = urlencode({key: value for key, value in params.items() if value})
    response = RedirectResponse(f"/login?{query}" if query else "/login", status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    return response


@router.get("/{name}/login")
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


@router.get("/{name}/callback")
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
    # Readable by the page script (Reflex keeps the token in its cookie state), never cross-site.
    response.set_cookie(
        account.SESSION_COOKIE, outcome.token, path="/", samesite="strict", secure=_secure()
    )
    return response

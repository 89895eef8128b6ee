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
LINK_COOKIE = "gptstudio_oidc_link"


def _client(request: Request) -> access.Client:
    forwarded = request.headers.get("x-forwarded-for", "")
    ip = forwarded.split(",")[0].strip() or (request.client.host if request.client else "")
    return access.Client(ip=ip, user_agent=request.headers.get("user-agent", ""))


def _to_login(**params: str) -> RedirectResponse:
    response = RedirectResponse(f"/login?{urlencode(params)}", status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    return response


@router.get("/{name}/login")
async def login(name: str, next: str = "") -> RedirectResponse:
    try:
        provider = oidc.get_provider(name)
        url, state = await oidc.begin(provider, next_path=next if next.startswith("/") else "")
    except DomainError as error:
        return _to_login(error=str(error))
    response = RedirectResponse(url, status_code=303)
    # Lax: the browser must send it back on the provider's top-level redirect to the callback.
    response.set_cookie(
        STATE_COOKIE, state, max_age=oidc.STATE_SECONDS, path="/auth/oidc", httponly=True,
        samesite="lax", secure=get_settings().base_url.startswith("https://"),
    )  # fmt: skip
    return response


@router.get("/{name}/callback")
async def callback(
    request: Request, name: str, code: str = "", state: str = "", error: str = ""
) -> RedirectResponse:
    if error:
        return _to_login(error=f"Sign-in was cancelled or refused ({error[:80]}).")
    try:
        provider = oidc.get_provider(name)
        profile = await oidc.finish(
            provider, code=code, state=state, cookie=request.cookies.get(STATE_COOKIE, "")
        )
        outcome = await asyncio.to_thread(
            oidc.sign_in, profile, client=_client(request),
            previous_token=request.cookies.get(account.SESSION_COOKIE, ""),
        )  # fmt: skip
    except DomainError as failure:
        return _to_login(error=str(failure))
    if outcome.link_ticket:
        return _to_login(link=outcome.link_ticket)
    if outcome.mfa_ticket:
        return _to_login(mfa=outcome.mfa_ticket)
    assert outcome.user is not None
    target = await asyncio.to_thread(mfa.landing_path, outcome.user)
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    # Readable by the page script (Reflex keeps the token in its cookie state), never cross-site.
    response.set_cookie(
        account.SESSION_COOKIE, outcome.token, path="/", samesite="strict",
        secure=get_settings().base_url.startswith("https://"),
    )  # fmt: skip
    return response

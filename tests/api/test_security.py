"""HTTP hardening: security headers on every response, cross-site state changes refused."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from gptstudio.api import create_api


def app_with_a_post_route() -> TestClient:
    api = create_api()
    router = APIRouter()

    @router.post("/_test/change")
    async def change() -> dict[str, bool]:
        return {"changed": True}

    api.include_router(router)
    return TestClient(api, base_url="http://studio.test")


def test_security_headers(db: str) -> None:
    headers = TestClient(create_api()).get("/healthz").headers
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_cross_site_cookie_post_is_refused() -> None:
    client = app_with_a_post_route()
    evil = client.post(
        "/_test/change", headers={"Origin": "https://evil.example", "Cookie": "gptstudio_session=x"}
    )
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "csrf"
    same = client.post(
        "/_test/change", headers={"Origin": "http://studio.test", "Cookie": "gptstudio_session=x"}
    )
    assert same.status_code == 200
    api_client = client.post(
        "/_test/change",
        headers={"Origin": "https://elsewhere.example", "Authorization": "Bearer gs-key"},
    )
    assert api_client.status_code == 200  # bearer-key requests carry no ambient credentials


def app_as_reflex_serves_it() -> TestClient:
    """The API inside the CORS layers Reflex adds around it (``App._add_cors`` with the origins
    of ``rxconfig.py``), as the running app serves every route."""
    from reflex.app import App
    from reflex.config import get_config
    from starlette.applications import Starlette

    get_config(reload=True)
    outer = Starlette()
    api = create_api()
    App._add_cors(api)
    outer.mount("", api)
    App._add_cors(outer)
    return TestClient(outer, base_url="http://localhost:3000")


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_no_other_origin_gets_credentialed_cors(db: str, method: str) -> None:
    """Issue 16, break 2: a page on another port of the same site read signed-in creators' files
    because every route reflected any Origin with credentials (preflights included)."""
    client = app_as_reflex_serves_it()
    for origin in ("http://localhost:9999", "https://evil.example", "null"):
        headers = {"Origin": origin, "Cookie": "gptstudio_session=x"}
        if method == "OPTIONS":
            headers["Access-Control-Request-Method"] = "GET"
        for path in ("/api/datasets/1/train.jsonl", "/api/sources/1", "/healthz", "/v1/models"):
            response = client.request(method, path, headers=headers)
            allowed = response.headers.get("access-control-allow-origin")
            assert allowed in (None, "http://localhost:3000"), (origin, path, allowed)


# --- the session cookie (issue 16, break 3) ---------------------------------------------------


def signed_in_token() -> str:
    from gptstudio.services import account

    account.register(email="ada@example.com", password="correct horse battery")
    return account.login(email="ada@example.com", password="correct horse battery").token


@pytest.mark.parametrize("env", ["development", "production"])
def test_the_session_cookie_is_httponly_and_set_only_by_an_http_response(
    db: str, settings_env: pytest.MonkeyPatch, env: str
) -> None:
    """The probe read the session cookie from page script (any XSS stole a session). Now a
    sign-in hands the browser a one-time grant that ``/auth/session`` trades for an HttpOnly,
    SameSite=Strict cookie (Secure in production), and HSTS is sent in production."""
    from gptstudio.services import account
    from gptstudio.settings import get_settings

    if env == "production":
        settings_env.setenv("GPTSTUDIO_ENV", "production")
        settings_env.setenv("GPTSTUDIO_SECRET_KEY", "a-production-secret-of-some-length")
        settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", "k1:" + "A" * 43 + "=")
        get_settings.cache_clear()
    token = signed_in_token()
    client = TestClient(create_api(), base_url="http://localhost:3000")
    grant = account.cookie_grant(token=token)
    response = client.get(
        "/auth/session", params={"grant": grant, "next": "/dashboard"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{account.SESSION_COOKIE}={token};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert ("Secure" in cookie) == (env == "production")
    assert ("strict-transport-security" in response.headers) == (env == "production")
    # The grant works once.
    again = client.get("/auth/session", params={"grant": grant}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login?error=")
    assert "set-cookie" not in again.headers or token not in again.headers["set-cookie"]
    # An open redirect is not on offer.
    other = client.get(
        "/auth/session",
        params={"grant": account.cookie_grant(token=token), "next": "//evil.example"},
        follow_redirects=False,
    )
    assert other.headers["location"] == "/"


def test_logout_ends_the_session_and_clears_the_cookie_only_from_the_app(db: str) -> None:
    from gptstudio.errors import SessionExpired
    from gptstudio.services import account

    token = signed_in_token()
    client = TestClient(create_api(), base_url="http://localhost:3000")
    cookies = {"Cookie": f"{account.SESSION_COOKIE}={token}"}
    cross = client.get(
        "/auth/logout", headers={**cookies, "Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert "set-cookie" not in cross.headers
    assert account.user_for_session(token=token).email == "ada@example.com"
    out = client.get(
        "/auth/logout", headers={**cookies, "Sec-Fetch-Site": "same-origin"}, follow_redirects=False
    )
    assert out.headers["location"] == "/login?reason=signed_out"
    assert out.headers["set-cookie"].startswith(f'{account.SESSION_COOKIE}=""')
    with pytest.raises(SessionExpired):
        account.user_for_session(token=token)


def test_the_csp_allows_sockets_only_to_the_app_itself(db: str) -> None:
    csp = TestClient(create_api()).get("/healthz").headers["content-security-policy"]
    connect = next(part for part in csp.split("; ") if part.startswith("connect-src"))
    assert connect == "connect-src 'self' ws://localhost:3000 ws://127.0.0.1:3000"
    assert "object-src 'none'" in csp and "base-uri 'self'" in csp

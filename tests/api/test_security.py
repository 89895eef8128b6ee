"""HTTP hardening: security headers on every response, cross-site state changes refused."""

from __future__ import annotations

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

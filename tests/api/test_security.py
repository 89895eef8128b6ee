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

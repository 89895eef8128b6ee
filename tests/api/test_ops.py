"""/healthz and /metrics against the real database and queue brokers (the engine's part of
/healthz against a real engine: tests/test_supervision.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from huey import RedisHuey

import gptstudio.jobs.queue
from gptstudio.api import create_api
from gptstudio.settings import get_settings
from tests.conftest import free_port


@pytest.fixture
def client(db: str) -> TestClient:
    return TestClient(create_api())


def test_healthz_reports_database_queue_and_a_down_engine_as_degraded(
    client: TestClient, settings_env: pytest.MonkeyPatch
) -> None:
    """No engine listens: the web process still serves, so 200, "degraded", the engine named."""
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["database"] == body["queue"] == "ok"
    assert body["engine"].startswith("error: ConnectError")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_healthz_with_redis_queue(
    client: TestClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gptstudio.jobs.queue, "huey", RedisHuey("gptstudio-test", url=redis_url))
    assert client.get("/healthz").json()["queue"] == "ok"


def test_healthz_is_503_when_the_queue_broker_is_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real client for a port where nothing listens: the broker is down, not mocked.
    monkeypatch.setattr(
        gptstudio.jobs.queue, "huey", RedisHuey("down", url="redis://127.0.0.1:1/0")
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["queue"].startswith("error: ConnectionError")


def test_healthz_is_503_when_the_database_is_down(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("GPTSTUDIO_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/x")
    response = TestClient(create_api()).get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error: OperationalError")


def test_metrics_count_requests_and_report_queue_depth(client: TestClient) -> None:
    # The queue is the process's embedded one: tasks earlier tests left in it would count.
    gptstudio.jobs.queue.huey.flush()
    client.get("/healthz")
    client.get("/healthz")
    text = client.get("/metrics").text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('gptstudio_http_requests_total{method="GET",route="/healthz"')
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "gptstudio_http_request_duration_seconds_bucket" in text
    assert "gptstudio_queue_depth 0.0" in text


@pytest.mark.parametrize("path", ["/metrics", "/api/docs", "/api/openapi.json"])
def test_ops_pages_are_private_in_production(
    db: str, settings_env: pytest.MonkeyPatch, path: str
) -> None:
    """Issue 16: /metrics and /api/docs were public in production. Now only the configured
    addresses, or a request with the ops token, see them."""
    settings_env.setenv("GPTSTUDIO_ENV", "production")
    settings_env.setenv("GPTSTUDIO_SECRET_KEY", "a-production-secret-of-some-length")
    settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", "k1:" + "A" * 43 + "=")
    settings_env.setenv("GPTSTUDIO_OPS_TOKEN", "ops-token-for-the-test")
    settings_env.setenv("GPTSTUDIO_OPS_ALLOWED_NETWORKS", "10.1.0.0/16")
    get_settings.cache_clear()
    outside = TestClient(create_api(), client=("203.0.113.5", 5000))
    assert outside.get(path).status_code == 404
    assert outside.get(path, headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 404
    assert outside.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 404
    token = {"Authorization": "Bearer ops-token-for-the-test"}
    assert outside.get(path, headers=token).status_code == 200
    inside = TestClient(create_api(), client=("10.1.9.9", 5000))
    assert inside.get(path).status_code == 200
    assert outside.get("/healthz").status_code in (200, 503)  # probes stay public

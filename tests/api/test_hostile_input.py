"""Hostile input answers with an error in the route's shape, never an unhandled 500 (issue 16,
break 6): ids beyond the integer range, a lone surrogate, NUL in ``model``, a huge seed, and
signed webhooks whose body is not the shape of a Stripe event."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gptstudio.api import create_api
from gptstudio.models import Role
from gptstudio.services import account, api_key
from gptstudio.settings import get_settings
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"
WEBHOOK_SECRET = "whsec_hostile_input_test"
HUGE = 2**31


@pytest.fixture
def client(db: str) -> TestClient:
    return TestClient(create_api(), raise_server_exceptions=False)


@pytest.fixture
def key(db: str) -> str:
    owner = account.register(email="owner@example.com", password=PASSWORD, role=Role.creator)
    publish_assistant(owner, "Bee Mentor")
    raw, _ = api_key.create_key(
        actor=owner, name="probe", scopes=["chat", "models:read", "documents:write"]
    )
    return raw


def assert_openai_error(response: Any, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"] and "type" in error


@pytest.mark.parametrize(
    "path",
    [
        f"/api/sources/{HUGE}",
        f"/api/sources/{2**80}",
        f"/api/datasets/{HUGE}/train.jsonl",
        f"/api/datasets/{-(2**63) - 1}/test.jsonl",
    ],
)
def test_ids_beyond_the_integer_range_are_not_found(
    client: TestClient, key: str, path: str
) -> None:
    session = account.login(email="owner@example.com", password=PASSWORD).token
    response = client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert_openai_error(response, 400, 401, 404)  # sources need a session: 401 comes first
    signed_in = client.get(path, headers={"Cookie": f"gptstudio_session={session}"})
    assert_openai_error(signed_in, 400, 404)


def test_huge_assistant_id_upload(client: TestClient, key: str) -> None:
    response = client.post(
        f"/api/assistants/{HUGE}/documents",
        headers={"Authorization": f"Bearer {key}"},
        files={"files": ("a.txt", b"hello", "text/plain")},
    )
    assert_openai_error(response, 400, 404)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "\ud800"}]},
        {"messages": [{"role": "user", "content": "hi \udfff there"}]},
        {"model": "bee-mentor\x00"},
        {"seed": 2**80},
        {"seed": -(2**80)},
    ],
)
def test_hostile_chat_requests_get_an_openai_error(
    client: TestClient, key: str, change: dict[str, Any]
) -> None:
    body = {"model": "bee-mentor", "messages": [{"role": "user", "content": "hi"}], **change}
    raw = json.dumps(body, ensure_ascii=True).encode()  # "\ud800" travels as its JSON escape
    response = client.post(
        "/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert_openai_error(response, 400, 404)
    if "seed" not in change:
        return
    assert "seed" in response.json()["error"]["message"]


def stripe_signed(payload: bytes) -> str:
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return f"t={stamp},v1={mac.hexdigest()}"


@pytest.mark.parametrize(
    "body",
    [
        [],
        [{"id": "evt_1"}],
        {
            "id": "evt_2",
            "type": "customer.subscription.updated",
            "created": 1,
            "data": {"object": "sub"},
        },
        {"id": "evt_3", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}},
        {"id": "evt_4", "type": "invoice.paid", "created": 1.5e30, "data": {"object": {}}},
        {"id": "evt_5", "type": ["invoice.paid"], "created": 1, "data": {"object": {}}},
        {"id": "evt_6", "type": "checkout.session.completed", "created": 1, "data": []},
        {"id": "evt_7", "type": "charge.refunded", "created": 1},
    ],
)
def test_malformed_signed_webhooks_are_refused(
    client: TestClient, settings_env: pytest.MonkeyPatch, body: Any
) -> None:
    settings_env.setenv("GPTSTUDIO_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    get_settings.cache_clear()
    payload = json.dumps(body).encode()
    response = client.post(
        "/webhooks/stripe", content=payload, headers={"Stripe-Signature": stripe_signed(payload)}
    )
    assert_openai_error(response, 400)

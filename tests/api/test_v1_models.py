"""``/v1/models`` over HTTP: API keys with the wrong scope, expired or revoked get JSON errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.api import create_api
from gptstudio.db import session_scope, utcnow
from gptstudio.models import ApiKey, Assistant, Role
from gptstudio.services import account, api_key, assistant

PASSWORD = "correct horse battery"


@pytest.fixture
def client(db: str) -> TestClient:
    return TestClient(create_api())


@pytest.fixture
def sue(db: str) -> account.UserPublic:
    account.register(email="ada@example.com", password=PASSWORD)
    return account.register(email="sue@example.com", password=PASSWORD)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_lists_published_assistants_in_openai_format(
    client: TestClient, sue: account.UserPublic
) -> None:
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    live = assistant.create_assistant(actor=cy, name="Bee Mentor")
    assistant.create_assistant(actor=cy, name="Draft")
    with session_scope() as session:
        row = session.get(Assistant, live.id)
        assert row is not None
        row.is_published = True
    raw, _ = api_key.create_key(actor=sue, name="t", scopes=["models:read"])
    response = client.get("/v1/models", headers=auth(raw))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["bee-mentor"]
    assert body["data"][0]["object"] == "model"


def test_lists_only_models_the_key_can_chat_with(
    client: TestClient, sue: account.UserPublic
) -> None:
    """Issue 16: /v1/models listed an assistant sold only on paid tiers, which answered 402 to a
    key whose owner has no subscription. Only usable models are listed; the owner sees theirs."""
    from gptstudio.models import Plan

    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    made = {name: assistant.create_assistant(actor=cy, name=name) for name in ("Open", "Paid")}
    with session_scope() as session:
        for made_one in made.values():
            row = session.get(Assistant, made_one.id)
            assert row is not None
            row.is_published = True
        session.add(
            Plan(assistant_id=made["Paid"].id, key="pro", name="Pro", monthly_price_cents=900)
        )
    listed = {}
    for who in (sue, cy):
        raw, _ = api_key.create_key(actor=who, name="t", scopes=["models:read"])
        listed[who.email] = [
            m["id"] for m in client.get("/v1/models", headers=auth(raw)).json()["data"]
        ]
    assert listed == {"sue@example.com": ["open"], "cy@example.com": ["open", "paid"]}


@pytest.mark.parametrize(
    ("case", "status", "code", "message"),
    [
        ("missing", 401, "invalid_api_key", "Missing API key"),
        ("forged", 401, "invalid_api_key", "Incorrect API key"),
        ("scope", 403, "insufficient_scope", "lacks the 'models:read' scope"),
        ("expired", 401, "expired_api_key", "expired on"),
        ("revoked", 401, "revoked_api_key", "has been revoked"),
    ],
)
def test_refused_keys_get_openai_style_errors(
    client: TestClient, sue: account.UserPublic, case: str, status: int, code: str, message: str
) -> None:
    scopes = ["chat"] if case == "scope" else ["models:read"]
    raw, info = api_key.create_key(actor=sue, name="t", scopes=scopes)
    if case == "expired":
        with session_scope() as session:
            session.exec(select(ApiKey)).one().expires_at = utcnow() - timedelta(days=1)
    if case == "revoked":
        api_key.revoke_key(actor=sue, key_id=info.id)
    headers = {} if case == "missing" else auth("gs-forged" if case == "forged" else raw)
    response = client.get("/v1/models", headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"]
    assert error["type"] in {"authentication_error", "permission_error"}

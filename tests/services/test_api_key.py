"""API keys: shown once, stored hashed, scoped, expiring, revocable, and only the owner's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import ApiKey, Role
from gptstudio.services import account, api_key, crypto

PASSWORD = "correct horse battery"


@pytest.fixture
def users(db: str) -> tuple[account.UserPublic, account.UserPublic]:
    admin = account.register(email="ada@example.com", password=PASSWORD)
    sue = account.register(email="sue@example.com", password=PASSWORD, role=Role.subscriber)
    return admin, sue


def test_key_is_shown_once_and_stored_as_a_hash(
    users: tuple[account.UserPublic, account.UserPublic],
) -> None:
    _, sue = users
    raw, info = api_key.create_key(actor=sue, name="laptop", scopes=["chat", "models:read"])
    assert raw.startswith("gs-") and info.prefix == raw[:10]
    with session_scope() as session:
        stored = session.exec(select(ApiKey)).one()
    assert stored.key_hash == crypto.hash_token(raw) and raw not in stored.key_hash
    assert api_key.authenticate(raw_key=raw, scope="chat").id == sue.id
    assert api_key.list_keys(actor=sue)[0].last_used_at is not None


def test_refusals_say_why(users: tuple[account.UserPublic, account.UserPublic]) -> None:
    _, sue = users
    raw, info = api_key.create_key(actor=sue, name="x", scopes=["chat"], expires_in_days=1)
    with pytest.raises(api_key.ApiKeyRefused, match="lacks the 'models:read' scope") as scope:
        api_key.authenticate(raw_key=raw, scope="models:read")
    assert scope.value.status_code == 403
    with pytest.raises(api_key.ApiKeyRefused, match="Missing API key"):
        api_key.authenticate(raw_key="", scope="chat")
    with pytest.raises(api_key.ApiKeyRefused, match="Incorrect API key"):
        api_key.authenticate(raw_key="gs-forged", scope="chat")
    with session_scope() as session:
        session.exec(select(ApiKey)).one().expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(api_key.ApiKeyRefused, match="expired") as expired:
        api_key.authenticate(raw_key=raw, scope="chat")
    assert expired.value.code == "expired_api_key"
    api_key.revoke_key(actor=sue, key_id=info.id)
    with pytest.raises(api_key.ApiKeyRefused, match="revoked"):
        api_key.authenticate(raw_key=raw, scope="chat")


def test_scope_and_expiry_are_validated(
    users: tuple[account.UserPublic, account.UserPublic],
) -> None:
    admin, sue = users
    with pytest.raises(InvalidInput, match="Choose scopes"):
        api_key.create_key(actor=sue, name="x", scopes=["root"])
    with pytest.raises(InvalidInput, match="Choose scopes"):
        api_key.create_key(actor=sue, name="x", scopes=[])
    with pytest.raises(PermissionDenied, match="Only admins"):
        api_key.create_key(actor=sue, name="x", scopes=["admin"])
    with pytest.raises(InvalidInput, match="1 to 3650"):
        api_key.create_key(actor=sue, name="x", scopes=["chat"], expires_in_days=0)
    raw, _ = api_key.create_key(actor=admin, name="ops", scopes=["admin"])
    assert api_key.authenticate(raw_key=raw, scope="admin").role == Role.admin


def test_keys_belong_to_their_owner(users: tuple[account.UserPublic, account.UserPublic]) -> None:
    admin, sue = users
    _, info = api_key.create_key(actor=sue, name="mine", scopes=["chat"])
    assert api_key.list_keys(actor=admin) == []
    with pytest.raises(NotFound):
        api_key.revoke_key(actor=admin, key_id=info.id)
    assert not api_key.list_keys(actor=sue)[0].revoked

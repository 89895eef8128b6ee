"""IDOR sweep: a second user tries every object operation with the first user's ids.

Reflex events and HTTP routes are thin wrappers over these service functions (they pass the
signed-in user as ``actor``), so refusing here refuses there.
"""

from __future__ import annotations

import pytest

from gptstudio.errors import NotFound, PermissionDenied
from gptstudio.models import Role
from gptstudio.services import account, api_key, assistant, audit, mfa

PASSWORD = "correct horse battery"


@pytest.fixture
def two_creators(db: str) -> tuple[account.UserPublic, account.UserPublic, str, int]:
    account.register(email="root@example.com", password=PASSWORD)  # the admin
    first = account.register(email="first@example.com", password=PASSWORD, role=Role.creator)
    second = account.register(email="second@example.com", password=PASSWORD, role=Role.creator)
    token = account.login(email="first@example.com", password=PASSWORD).token
    assistant.create_assistant(actor=first, name="First's assistant")
    _, key = api_key.create_key(actor=first, name="first key", scopes=["chat"])
    return first, second, token, key.id


def test_second_user_cannot_touch_first_users_objects(
    two_creators: tuple[account.UserPublic, account.UserPublic, str, int],
) -> None:
    first, second, token, key_id = two_creators
    (first_session,) = account.list_sessions(actor=first, current_token=token)
    with pytest.raises(NotFound):
        account.revoke_session(actor=second, session_id=first_session.id)
    with pytest.raises(NotFound):
        api_key.revoke_key(actor=second, key_id=key_id)
    with pytest.raises(PermissionDenied):
        account.set_role(actor=second, user_id=first.id, role=Role.subscriber)
    with pytest.raises(PermissionDenied):
        account.list_users(actor=second)
    with pytest.raises(PermissionDenied):
        audit.list_events(actor=second)
    with pytest.raises(PermissionDenied):
        mfa.set_required_roles(actor=second, roles=set())
    assert account.list_sessions(actor=second, current_token="") == []
    assert api_key.list_keys(actor=second) == []
    assert assistant.list_owned(actor=second) == []
    # and the first user's objects are untouched
    assert account.user_for_session(token=token).id == first.id
    assert not api_key.list_keys(actor=first)[0].revoked
    assert [a.name for a in assistant.list_owned(actor=first)] == ["First's assistant"]


def test_another_creators_dataset_or_document_answers_like_an_unknown_id(
    two_creators: tuple[account.UserPublic, account.UserPublic, str, int],
    tmp_path: object,
) -> None:
    """Issue 16: another tenant's dataset or document answered "There is no such assistant."
    while an unknown id answered "There is no such dataset.": ids could be told apart."""
    from gptstudio.db import session_scope
    from gptstudio.models import Dataset, Document
    from gptstudio.services import dataset, document

    first, second, _, _ = two_creators
    owned = assistant.list_owned(actor=first)[0].id
    with session_scope() as session:
        data = Dataset(assistant_id=owned, storage_path=str(tmp_path))
        doc = Document(
            owner_id=first.id, assistant_id=owned, filename="a.txt", storage_path=str(tmp_path)
        )
        session.add_all([data, doc])
        session.flush()
        data_id, doc_id = data.id or 0, doc.id or 0

    def message(call: object) -> str:
        with pytest.raises(NotFound) as refused:
            call()  # type: ignore[operator]
        return str(refused.value)

    for real, unknown in [
        (lambda: dataset.dataset_file(actor=second, dataset_id=data_id, split="train"),
         lambda: dataset.dataset_file(actor=second, dataset_id=data_id + 999, split="train")),
        (lambda: document.delete_document(actor=second, document_id=doc_id),
         lambda: document.delete_document(actor=second, document_id=doc_id + 999)),
        (lambda: document.choose_columns(actor=second, document_id=doc_id, columns={}),
         lambda: document.choose_columns(actor=second, document_id=doc_id + 999, columns={})),
        (lambda: document.cited_source(actor=second, document_id=doc_id),
         lambda: document.cited_source(actor=second, document_id=doc_id + 999)),
    ]:  # fmt: skip
        assert message(real) == message(unknown)

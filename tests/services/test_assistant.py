"""Assistants: only creators (and admins) create them; each creator sees only their own."""

from __future__ import annotations

import pytest

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, PermissionDenied
from gptstudio.models import Assistant, Role
from gptstudio.services import account, assistant

PASSWORD = "correct horse battery"


@pytest.fixture
def people(db: str) -> dict[str, account.UserPublic]:
    return {
        "admin": account.register(email="ada@example.com", password=PASSWORD),
        "cy": account.register(email="cy@example.com", password=PASSWORD, role=Role.creator),
        "cleo": account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator),
        "sue": account.register(email="sue@example.com", password=PASSWORD),
    }


def test_creators_create_and_list_their_own(people: dict[str, account.UserPublic]) -> None:
    bees = assistant.create_assistant(
        actor=people["cy"], name="  Bee   Mentor ", description="Hives"
    )
    assistant.create_assistant(actor=people["cleo"], name="Tax Helper")
    assert (bees.name, bees.slug, bees.is_published) == ("Bee Mentor", "bee-mentor", False)
    assert [a.name for a in assistant.list_owned(actor=people["cy"])] == ["Bee Mentor"]
    assert [a.name for a in assistant.list_owned(actor=people["cleo"])] == ["Tax Helper"]


def test_slugs_stay_unique(people: dict[str, account.UserPublic]) -> None:
    first = assistant.create_assistant(actor=people["cy"], name="Bee Mentor")
    second = assistant.create_assistant(actor=people["cleo"], name="Bee mentor!")
    assert first.slug == "bee-mentor"
    assert second.slug.startswith("bee-mentor-") and second.slug != first.slug


def test_subscribers_cannot_create_or_list_owned(people: dict[str, account.UserPublic]) -> None:
    with pytest.raises(PermissionDenied):
        assistant.create_assistant(actor=people["sue"], name="Mine")
    with pytest.raises(PermissionDenied):
        assistant.list_owned(actor=people["sue"])


def test_bad_names_are_refused(people: dict[str, account.UserPublic]) -> None:
    with pytest.raises(InvalidInput, match="2 to 120"):
        assistant.create_assistant(actor=people["cy"], name=" ")
    with pytest.raises(InvalidInput, match="2000"):
        assistant.create_assistant(actor=people["cy"], name="Ok", description="x" * 2001)


def test_everyone_signed_in_sees_only_published(people: dict[str, account.UserPublic]) -> None:
    draft = assistant.create_assistant(actor=people["cy"], name="Draft")
    live = assistant.create_assistant(actor=people["cleo"], name="Live")
    with session_scope() as session:
        row = session.get(Assistant, live.id)
        assert row is not None
        row.is_published = True
    for who in people.values():
        names = [a.name for a in assistant.list_available(actor=who)]
        assert names == ["Live"] and draft.name not in names

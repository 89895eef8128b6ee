"""Assistant settings: only the owner edits name, description, persona and retrieval; bad input
is refused whole."""

from __future__ import annotations

import pytest

from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Role
from gptstudio.services import account, assistant, assistant_settings, audit

PASSWORD = "correct horse battery"


@pytest.fixture
def people(db: str) -> dict[str, account.UserPublic]:
    return {
        "admin": account.register(email="ada@example.com", password=PASSWORD),
        "cy": account.register(email="cy@example.com", password=PASSWORD, role=Role.creator),
        "cleo": account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator),
        "sue": account.register(email="sue@example.com", password=PASSWORD),
    }


def test_owner_edits_profile_and_persona(people: dict[str, account.UserPublic]) -> None:
    bees = assistant.create_assistant(actor=people["cy"], name="Bee Mentor")
    saved = assistant_settings.update_profile(
        actor=people["cy"], assistant_id=bees.id, name="  Hive   Mentor ",
        description=" Hives. ", system_prompt=" You are a calm beekeeper. ",
    )  # fmt: skip
    assert (saved.name, saved.slug, saved.description, saved.system_prompt) == (
        "Hive Mentor",
        "bee-mentor",
        "Hives.",
        "You are a calm beekeeper.",
    )
    again = assistant_settings.get_settings_of(actor=people["cy"], assistant_id=bees.id)
    assert again == saved
    actions = [e.action for e in audit.list_events(actor=people["admin"])]
    assert actions.count("assistant.persona_changed") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "x"}, "name of 2 to 120"),
        ({"description": "d" * 2001}, "description must be at most 2000"),
        ({"system_prompt": "p" * 8001}, "persona must be at most 8000 characters \\(it has 8001"),
    ],
)
def test_bad_profiles_change_nothing(
    people: dict[str, account.UserPublic], change: dict[str, str], message: str
) -> None:
    bees = assistant.create_assistant(actor=people["cy"], name="Bee Mentor")
    fields = {"name": "New Name", "description": "new", "system_prompt": "new", **change}
    with pytest.raises(InvalidInput, match=message):
        assistant_settings.update_profile(actor=people["cy"], assistant_id=bees.id, **fields)
    kept = assistant_settings.get_settings_of(actor=people["cy"], assistant_id=bees.id)
    assert (kept.name, kept.description, kept.system_prompt) == ("Bee Mentor", "", "")


def test_retrieval_settings(people: dict[str, account.UserPublic]) -> None:
    bees = assistant.create_assistant(actor=people["cy"], name="Bee Mentor")
    saved = assistant_settings.update_retrieval(
        actor=people["cy"], assistant_id=bees.id, enabled=True, top_k=6
    )
    assert (saved.rag_enabled, saved.rag_top_k) == (True, 6)
    for top_k in (0, 21, True):
        with pytest.raises(InvalidInput, match="from 1 to 20"):
            assistant_settings.update_retrieval(
                actor=people["cy"], assistant_id=bees.id, enabled=False, top_k=top_k
            )
    kept = assistant_settings.get_settings_of(actor=people["cy"], assistant_id=bees.id)
    assert (kept.rag_enabled, kept.rag_top_k) == (True, 6)


def test_only_the_owner(people: dict[str, account.UserPublic]) -> None:
    bees = assistant.create_assistant(actor=people["cy"], name="Bee Mentor")
    with pytest.raises(NotFound):
        assistant_settings.update_profile(
            actor=people["cleo"], assistant_id=bees.id, name="Mine", description="",
            system_prompt="",
        )  # fmt: skip
    with pytest.raises(PermissionDenied):
        assistant_settings.update_retrieval(
            actor=people["sue"], assistant_id=bees.id, enabled=True, top_k=3
        )
    with pytest.raises(NotFound):
        assistant_settings.get_settings_of(actor=people["cleo"], assistant_id=bees.id)


def test_welcome_message_and_conversation_starters(people: dict[str, account.UserPublic]) -> None:
    from gptstudio.services import completion
    from tests.factories import publish_assistant

    bees = publish_assistant(people["cy"], "Bees & Honey")
    saved = assistant_settings.update_welcome(
        actor=people["cy"], assistant_id=bees.assistant_id, welcome_message="  Hello, beekeeper!  ",
        starters=["How do I start a hive?", "  ", "  When   do bees swarm? "],
    )  # fmt: skip
    assert saved.welcome_message == "Hello, beekeeper!"
    assert saved.conversation_starters == ("How do I start a hive?", "When do bees swarm?")
    served = completion.served(slug=bees.slug)  # what the chat page and the widget show
    assert served.name == "Bees & Honey" and served.welcome_message == "Hello, beekeeper!"
    assert served.conversation_starters == saved.conversation_starters
    for welcome, starters, message in [
        ("w" * 2001, [], "at most 2000"),
        ("", [f"q{n}" for n in range(7)], "at most 6"),
        ("", ["q" * 201], "at most 200"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            assistant_settings.update_welcome(
                actor=people["cy"], assistant_id=bees.assistant_id, welcome_message=welcome,
                starters=starters,
            )  # fmt: skip
    with pytest.raises(NotFound):
        assistant_settings.update_welcome(
            actor=people["cleo"],
            assistant_id=bees.assistant_id,
            welcome_message="Mine",
            starters=[],
        )
    kept = assistant_settings.get_settings_of(actor=people["cy"], assistant_id=bees.assistant_id)
    assert kept.welcome_message == "Hello, beekeeper!"

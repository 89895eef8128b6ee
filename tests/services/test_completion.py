"""Completions: which version serves an assistant, the checks on a request's parameters, and a
cached answer replayed as events."""

from __future__ import annotations

import pytest

from engine.protocol import Finish, Start, TextDelta, Usage
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Role
from gptstudio.services import account, completion
from tests.factories import publish_assistant

PASSWORD = "correct horse battery"


@pytest.fixture
def people(db: str) -> None:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    publish_assistant(cy)


def test_unpublished_or_unknown_models_are_not_served(
    people: None,
) -> None:
    with pytest.raises(NotFound, match="does not exist or is not published"):
        completion.served(slug="nope")
    assert completion.served(slug="bee-mentor").adapter_name == "bee-mentor-v1"


@pytest.mark.parametrize(
    ("params", "messages", "message"),
    [
        (completion.Params(temperature=3), [{"role": "user", "content": "hi"}], "temperature"),
        (completion.Params(top_p=0), [{"role": "user", "content": "hi"}], "top_p"),
        (completion.Params(max_tokens=0), [{"role": "user", "content": "hi"}], "max_tokens"),
        (completion.Params(), [], "at least one message"),
        (completion.Params(), [{"role": "robot", "content": "hi"}], "role"),
        (completion.Params(), [{"role": "user", "content": "x" * 40_000}], "at most"),
    ],
)
def test_parameter_checks(
    params: completion.Params, messages: list[dict[str, str]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        completion.check_messages(messages)
        params.check()


def test_a_cached_answer_replays_as_the_engine_events() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert completion.cached_events({"content": "Cobalt blue.", "usage": usage}) == [
        Start(),
        TextDelta("Cobalt blue."),
        Finish("stop", Usage(9, 3)),
    ]
    assert completion.cached_events({"content": "", "usage": {}}) == [Start(), Finish("stop")]

"""The training page's handlers, called as the browser would call them: every handler with
empty and malformed arguments ends in a message or nothing, never an unhandled exception (a
Publish with no version chosen was "An error occurred. Contact the website administrator");
the newest dataset and model versions are pre-selected; an empty generated answer says so."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reflex.state import State

from gptstudio.db import session_scope
from gptstudio.models import ModelVersion, Role
from gptstudio.pages.training.jobs import JobsState
from gptstudio.pages.training.launch import LaunchState
from gptstudio.pages.training.preview import PreviewState
from gptstudio.pages.training.state import EMPTY_ANSWER, TrainingState, split_summary
from gptstudio.pages.training.versions import VersionsState
from gptstudio.services import account, assistant
from gptstudio.state.auth import AuthState
from tests.jobs.test_training import make_dataset

PASSWORD = "correct horse battery"
STATES = (TrainingState, LaunchState, JobsState, VersionsState, PreviewState)
MALFORMED: tuple[Any, ...] = (None, "", " ", {}, [], "x", -1, 0, 10**12, "999999", 1.5,
                              {"dataset": "nope", "epochs": "many", "max_steps": "-"},
                              {"version": [], "reason": None}, {"junk": {"deep": [1]}},
                              {"question": "Hi?"})  # fmt: skip
BUILT_IN = {"setvar"}  # Reflex's own


def version(assistant_id: int, dataset_id: int, number: int, samples: list[Any]) -> int:
    with session_scope() as session:
        row = ModelVersion(
            assistant_id=assistant_id, dataset_id=dataset_id, version=number, base_model="m",
            adapter_path="/nowhere", metrics={"samples": samples, "held_out": {
                "split": "validation", "examples": 3, "note": "The test split is empty."}},
            report={"notes": ["early stopping is off: there are no eval examples"]},
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id or 0


@pytest.fixture
def page(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A signed-in creator's training page state for an assistant with two dataset versions
    and two model versions."""
    account.register(email="root@example.com", password=PASSWORD)
    account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    session = account.login(email="cy@example.com", password=PASSWORD)
    bees = assistant.create_assistant(actor=session.user, name="Bees").id
    first = make_dataset(bees, tmp_path / "v1")
    with session_scope() as db_session:
        from gptstudio.models import Dataset

        newer = Dataset(
            assistant_id=bees, version=2, content_hash="y" * 64, status="ready",
            counts={"splits": {"train": 0}}, storage_path=str(tmp_path / "v2"),
        )  # fmt: skip
        db_session.add(newer)
    samples = [{"question": "Who?", "reference": "Marta.", "base_answer": "",
                "tuned_answer": "  Marta inspects. "}]  # fmt: skip
    version(bees, first, 1, samples)
    version(bees, first, 2, samples)
    root = State(_reflex_internal_init=True)
    states = {cls: root.get_substate(cls.get_full_name().split(".")) for cls in STATES}
    # The session token comes from the socket handshake's HttpOnly cookie; here, no socket.
    monkeypatch.setattr(AuthState, "session_token", property(lambda _state: session.token))
    for state in states.values():
        state.assistant_id = bees
    yield states
    from gptstudio.jobs.queue import huey

    huey.flush()


def handlers() -> list[tuple[type, str]]:
    return [
        (cls, name)
        for cls in STATES
        for name in sorted(cls.event_handlers)
        if name not in BUILT_IN and name not in getattr(cls.__base__, "event_handlers", {})
    ]


def test_every_handler_survives_empty_and_malformed_arguments(page: dict[type, Any]) -> None:
    bees = page[TrainingState].assistant_id
    called = []
    for cls, name in handlers():
        handler = cls.event_handlers[name]
        params = len(inspect.signature(handler.fn).parameters) - 1  # without self
        for value in MALFORMED if params else (None,):
            state = page[cls]
            state.error, state.assistant_id = "", bees  # load (no ?id=) resets it
            try:
                result = handler.fn(state, *[value] * params)
                if inspect.iscoroutine(result):  # background handlers (no engine runs here)
                    asyncio.run(result)
            except Exception as error:  # the point: nothing escapes
                pytest.fail(f"{cls.__name__}.{name}({value!r}) raised {error!r}")
        called.append(name)
    assert {"launch", "publish", "cancel", "select_job", "show_samples", "export"} <= set(called)
    assert {"choose_dataset", "choose_version", "load", "watch"} <= set(called)
    assert {"ask_preview", "choose_preview", "clear_preview"} <= set(called)


def test_a_preview_with_the_engine_down_says_why_in_each_column(page: dict[type, Any]) -> None:
    ask = PreviewState.event_handlers["ask_preview"].fn
    state = page[PreviewState]
    asyncio.run(ask(state, {"question": "Hi?"}))
    assert state.preview_error.startswith("Train a model version first")  # none loaded yet
    state._refresh()
    asyncio.run(ask(state, {"question": "Hi?"}))
    (turn,) = state.preview_turns
    assert state.preview_version == "2" and not state.preview_busy
    for column in (turn["tuned"], turn["base"]):
        assert column.startswith("(no answer: The model server is not reachable")


def test_publish_with_no_version_chosen_says_so(page: dict[type, Any]) -> None:
    versions = page[VersionsState]
    versions._refresh()
    versions.publish_choice = ""
    versions.publish({"version": "", "reason": ""})
    assert versions.error == "Choose a model version to publish."
    versions.publish_choice = "2"
    versions.publish({})  # the pre-selected version: blocked by the gate, with the reason
    assert "Publishing is blocked" in versions.error


def test_the_newest_versions_are_preselected_and_empty_answers_shown(
    page: dict[type, Any],
) -> None:
    state = page[TrainingState]
    state._refresh()
    assert state.datasets == ["2", "1"] and state.dataset_choice == "2"
    assert state.dataset_splits["1"] == "16 train · 2 validation · 3 test"
    assert state.dataset_splits["2"].startswith("0 train · 0 validation · 0 test. The test split")
    assert [v["version"] for v in state.versions] == ["2", "1"] and state.publish_choice == "2"
    state.choose_dataset("1")
    state._refresh()
    assert state.dataset_choice == "1"  # the creator's pick stays
    (sample,) = state.samples
    assert sample["base_answer"] == EMPTY_ANSWER and sample["tuned_answer"] == "Marta inspects."
    assert "validation" in state.versions[0]["held_out"]
    assert "test split is empty" in state.versions[0]["held_out"]
    assert "Training: early stopping is off" in state.versions[0]["held_out"]


def test_the_page_builds() -> None:
    """Every component of the page accepts its props (Reflex checks them as the page builds:
    a wrong prop type stops the whole app from starting)."""
    from gptstudio.pages.training.page import training_page

    assert training_page() is not None


def test_an_empty_test_split_is_announced_with_what_the_gate_uses() -> None:
    with_validation = split_summary({"splits": {"train": 17, "validation": 3, "test": 0}})
    assert with_validation.startswith("17 train · 3 validation · 0 test. The test split is empty")
    assert with_validation.endswith("the gate will measure the validation split.")
    assert "held out of training" in split_summary({"splits": {"train": 30}})
    assert split_summary(None) == split_summary({}) == split_summary({"splits": []})

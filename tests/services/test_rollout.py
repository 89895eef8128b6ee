"""Versioned rollout: sticky A/B splits, promotion, one-click rollback, per-version stats."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Assistant, AuditEvent, Conversation, Message, ModelVersion, Role
from gptstudio.services import account, assistant, completion, conversation, feedback, rollout
from gptstudio.services.rollout import VersionStats

PASSWORD = "correct horse battery"
PASSED = {"gate": {"passed": True, "relative_gain": 0.2, "message": "20 % better."}}
FAILED = {"gate": {"passed": False, "relative_gain": 0.0, "message": "No gain over the base."}}


@dataclass
class World:
    cy: account.UserPublic
    cleo: account.UserPublic
    sue: account.UserPublic
    assistant_id: int
    v1: int
    v2: int
    v3: int  # failed the gate


def _version(assistant_id: int, number: int, metrics: dict[str, object], status: str) -> int:
    with session_scope() as session:
        version = ModelVersion(
            assistant_id=assistant_id, version=number, base_model="tiny", status=status,
            adapter_path=f"/adapters/{number}", metrics=metrics,
        )  # fmt: skip
        session.add(version)
        session.flush()
        return version.id or 0


@pytest.fixture
def world(db: str) -> World:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    cleo = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    bees = assistant.create_assistant(actor=cy, name="Bee Mentor")
    v1 = _version(bees.id, 1, PASSED, "published")
    v2 = _version(bees.id, 2, PASSED, "draft")
    v3 = _version(bees.id, 3, FAILED, "draft")
    with session_scope() as session:
        row = session.get(Assistant, bees.id)
        assert row is not None
        row.is_published, row.current_model_version_id = True, v1
    return World(cy, cleo, sue, bees.id, v1, v2, v3)


def _row(assistant_id: int) -> Assistant:
    with session_scope() as session:
        row = session.get(Assistant, assistant_id)
        assert row is not None
        return row


def _actions() -> list[str]:
    with session_scope() as session:
        return [
            e.action
            for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()  # type: ignore[arg-type]
            if e.action.startswith("rollout.")
        ]


def test_buckets_are_stable_and_spread() -> None:
    keys = [f"conversation:{n}" for n in range(2000)]
    first = [rollout.bucket(assistant_id=1, conversation_key=k) for k in keys]
    assert first == [rollout.bucket(assistant_id=1, conversation_key=k) for k in keys]
    assert all(0 <= b < 100 for b in first)
    share = sum(b < 30 for b in first) / len(first)
    assert 0.25 < share < 0.35
    # another assistant splits the same keys independently
    other = [rollout.bucket(assistant_id=2, conversation_key=k) for k in keys]
    assert other != first


def test_split_is_sticky_and_proportional(world: World) -> None:
    keys = [f"user:{n}" for n in range(1000)]
    assert {rollout.version_for(assistant_id=world.assistant_id, conversation_key=k)
            for k in keys} == {world.v1}  # fmt: skip
    state = rollout.set_split(
        actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v2, percent=20
    )
    assert state.splitting and state.candidate_percent == 20
    chosen = {k: rollout.version_for(assistant_id=world.assistant_id, conversation_key=k)
              for k in keys}  # fmt: skip
    on_candidate = {k for k, v in chosen.items() if v == world.v2}
    assert set(chosen.values()) == {world.v1, world.v2}
    assert 150 < len(on_candidate) < 250
    assert chosen == {k: rollout.version_for(assistant_id=world.assistant_id, conversation_key=k)
                      for k in keys}  # fmt: skip
    # raising the share keeps everyone already on the candidate there
    rollout.set_split(
        actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v2, percent=50
    )
    wider = {k for k in keys
             if rollout.version_for(assistant_id=world.assistant_id, conversation_key=k)
             == world.v2}  # fmt: skip
    assert on_candidate < wider
    assert _actions() == ["rollout.split", "rollout.split"]


def test_candidate_must_pass_the_gate_or_carry_a_reason(world: World) -> None:
    with pytest.raises(InvalidInput, match="did not pass the gate: No gain over the base"):
        rollout.set_split(
            actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v3,
            percent=10,
        )  # fmt: skip
    assert _row(world.assistant_id).candidate_model_version_id is None
    state = rollout.set_split(
        actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v3,
        percent=10, override_reason="Reviewed twenty answers by hand.",
    )  # fmt: skip
    assert state.candidate_version_id == world.v3
    with session_scope() as session:
        v3 = session.get(ModelVersion, world.v3)
        assert v3 is not None and v3.gate_override_reason == "Reviewed twenty answers by hand."


@pytest.mark.parametrize("percent", [-1, 101, True, 12.5])
def test_bad_shares_are_refused(world: World, percent: object) -> None:
    with pytest.raises(InvalidInput, match="whole number from 0 to 100"):
        rollout.set_split(
            actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v2,
            percent=percent,  # type: ignore[arg-type]
        )  # fmt: skip


def test_bad_candidates_are_refused(world: World) -> None:
    with pytest.raises(InvalidInput, match="already the current one"):
        rollout.set_split(
            actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v1,
            percent=10,
        )  # fmt: skip
    other = assistant.create_assistant(actor=world.cleo, name="Tax Helper")
    foreign = _version(other.id, 1, PASSED, "draft")
    with pytest.raises(NotFound, match="no such model version of this assistant"):
        rollout.set_split(
            actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=foreign,
            percent=10,
        )  # fmt: skip
    with session_scope() as session:
        draft = ModelVersion(assistant_id=world.assistant_id, version=9, base_model="tiny",
                             metrics=PASSED)  # fmt: skip
        session.add(draft)
        session.flush()
        no_adapter = draft.id or 0
    with pytest.raises(InvalidInput, match="no trained adapter"):
        rollout.set_split(
            actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=no_adapter,
            percent=10,
        )  # fmt: skip


def test_only_the_owner_controls_the_rollout(world: World) -> None:
    for attempt in (
        lambda actor: rollout.set_split(
            actor=actor, assistant_id=world.assistant_id, candidate_version_id=world.v2,
            percent=50,
        ),
        lambda actor: rollout.promote(actor=actor, assistant_id=world.assistant_id),
        lambda actor: rollout.rollback(actor=actor, assistant_id=world.assistant_id),
        lambda actor: rollout.version_stats(actor=actor, assistant_id=world.assistant_id),
        lambda actor: rollout.get_rollout(actor=actor, assistant_id=world.assistant_id),
    ):  # fmt: skip
        with pytest.raises(NotFound):
            attempt(world.cleo)
        with pytest.raises(PermissionDenied):
            attempt(world.sue)
    row = _row(world.assistant_id)
    assert (row.candidate_model_version_id, row.candidate_percent) == (None, 0)


def test_promote_then_roll_back_in_one_click(world: World) -> None:
    with pytest.raises(InvalidInput, match="no candidate version to promote"):
        rollout.promote(actor=world.cy, assistant_id=world.assistant_id)
    with pytest.raises(InvalidInput, match="Nothing to roll back"):
        rollout.rollback(actor=world.cy, assistant_id=world.assistant_id)
    rollout.set_split(
        actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v2, percent=30
    )
    state = rollout.promote(actor=world.cy, assistant_id=world.assistant_id)
    assert (state.current_version_id, state.previous_version_id) == (world.v2, world.v1)
    assert not state.splitting
    assert rollout.version_for(assistant_id=world.assistant_id, conversation_key="x") == world.v2
    assert completion.served(slug="bee-mentor").version_id == world.v2
    with session_scope() as session:
        statuses = {v.id: v.status for v in session.exec(select(ModelVersion)).all()}
    assert (statuses[world.v1], statuses[world.v2]) == ("retired", "published")

    state = rollout.rollback(actor=world.cy, assistant_id=world.assistant_id)
    assert state.current_version_id == world.v1 and state.previous_version_id is None
    assert (state.candidate_version_id, state.candidate_percent) == (world.v2, 0)
    assert completion.served(slug="bee-mentor").version_id == world.v1
    with pytest.raises(InvalidInput, match="Nothing to roll back"):
        rollout.rollback(actor=world.cy, assistant_id=world.assistant_id)
    assert _actions() == ["rollout.split", "rollout.promoted", "rollout.rolled_back"]


def test_rollback_stops_a_running_split(world: World) -> None:
    rollout.set_split(
        actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v2,
        percent=100,
    )  # fmt: skip
    assert rollout.version_for(assistant_id=world.assistant_id, conversation_key="k") == world.v2
    state = rollout.rollback(actor=world.cy, assistant_id=world.assistant_id)
    assert state.current_version_id == world.v1 and state.candidate_percent == 0
    assert rollout.version_for(assistant_id=world.assistant_id, conversation_key="k") == world.v1


def test_unpublished_assistants_have_no_version(world: World) -> None:
    draft = assistant.create_assistant(actor=world.cy, name="Draft")
    with pytest.raises(NotFound, match="no published version"):
        rollout.version_for(assistant_id=draft.id, conversation_key="k")
    with pytest.raises(InvalidInput, match="Publish a version first"):
        rollout.set_split(actor=world.cy, assistant_id=draft.id, candidate_version_id=None,
                          percent=0)  # fmt: skip


def test_percentiles() -> None:
    assert rollout.percentile([], 0.5) is None
    assert rollout.percentile([7], 0.95) == 7
    values = list(range(1, 101))
    assert (rollout.percentile(values, 0.5), rollout.percentile(values, 0.95)) == (50, 95)
    assert rollout.percentile([300, 100, 200], 0.5) == 200


def test_stats_per_version(world: World) -> None:
    def talk_with(version_id: int, latencies: list[int], ratings: list[int]) -> None:
        with session_scope() as session:
            talk = Conversation(user_id=world.sue.id, assistant_id=world.assistant_id,
                                model_version_id=version_id)  # fmt: skip
            session.add(talk)
            session.flush()
            for latency in latencies:
                session.add(Message(conversation_id=talk.id or 0, role="user", content="q"))
                session.add(Message(conversation_id=talk.id or 0, role="assistant", content="a",
                                    model_version_id=version_id, latency_ms=latency))  # fmt: skip
        rows = [m for m in conversation.messages_of(actor=world.sue, conversation_id=talk.id or 0)
                if m.role == "assistant"]  # fmt: skip
        for message, value in zip(rows, ratings, strict=False):
            feedback.set_feedback(actor=world.sue, message_id=message.id or 0, value=value)

    talk_with(world.v1, [100, 200, 300, 400], [1, 1, -1])
    talk_with(world.v1, [1000], [])
    talk_with(world.v2, [50, 60], [-1, -1])
    rollout.set_split(
        actor=world.cy, assistant_id=world.assistant_id, candidate_version_id=world.v2, percent=10
    )
    found = rollout.version_stats(actor=world.cy, assistant_id=world.assistant_id)
    stats = {s.version_id: s for s in found}
    assert list(stats) == [world.v3, world.v2, world.v1]
    v1, v2, v3 = stats[world.v1], stats[world.v2], stats[world.v3]
    assert (v1.role, v2.role, v3.role) == ("current", "candidate", "")
    assert (v1.conversations, v1.answers, v1.thumbs_up, v1.thumbs_down) == (2, 5, 2, 1)
    assert (v1.latency_p50_ms, v1.latency_p95_ms) == (300, 1000)
    assert (v2.conversations, v2.answers, v2.thumbs_up, v2.thumbs_down) == (1, 2, 0, 2)
    assert (v2.latency_p50_ms, v2.latency_p95_ms) == (50, 60)
    assert (v3.answers, v3.latency_p50_ms) == (0, None)


def test_conversations_keep_the_version_they_drew_until_a_rollback(world: World) -> None:
    rollout.set_split(actor=world.cy, assistant_id=world.assistant_id,
                      candidate_version_id=world.v2, percent=50)  # fmt: skip
    drawn = {}
    for _ in range(16):
        talk = conversation.start_conversation(actor=world.sue, slug="bee-mentor")
        model = conversation.served_for_conversation(actor=world.sue, conversation_id=talk.id or 0)
        assert model.version_id == talk.model_version_id  # sticky: pinned at the start
        drawn[talk.id] = model.version_id
    assert set(drawn.values()) == {world.v1, world.v2}  # both arms of a 50 % split get traffic
    on_v2 = next(c for c, v in drawn.items() if v == world.v2)
    pinned = conversation.served_for_conversation(actor=world.sue, conversation_id=on_v2 or 0)
    assert pinned.version_id == world.v2

    rollout.rollback(actor=world.cy, assistant_id=world.assistant_id)
    after = conversation.served_for_conversation(actor=world.sue, conversation_id=on_v2 or 0)
    assert after.version_id == world.v1 and after.adapter_name == "bee-mentor-v1"
    with pytest.raises(NotFound):
        conversation.served_for_conversation(actor=world.cleo, conversation_id=on_v2 or 0)


def test_a_split_compares_the_candidates_thumbs_down_rate_and_latency() -> None:
    def stats(version: int, role: str, answers: int, down: int, p50: int | None) -> VersionStats:
        return VersionStats(
            version_id=version, version=version, status="ready", role=role, conversations=1,
            answers=answers, thumbs_up=0, thumbs_down=down, latency_p50_ms=p50,
            latency_p95_ms=p50,
        )  # fmt: skip

    old, new = stats(1, "current", 8, 2, 900), stats(2, "candidate", 4, 0, 700)
    assert old.thumbs_down_rate == 0.25 and stats(3, "", 0, 0, None).thumbs_down_rate is None
    assert rollout.split_comparison([new, old]) == (
        "v2 against v1: thumbs down 0% (0 of 4) vs 25% (2 of 8); median latency 700 ms vs 900 ms."
    )
    assert rollout.split_comparison([stats(2, "candidate", 0, 0, None), old]) == ""
    assert rollout.split_comparison([old]) == ""

"""Versioned rollout: which model version answers, A/B splits, promotion and one-click rollback.

An assistant's ``current_model_version_id`` answers by default. The creator may send a share of
new conversations (``candidate_percent``) to a candidate version; the choice is sticky, because
a stable hash of the conversation key (or, for the API, of the user) decides it and the
conversation keeps the version it started with. **Promote** makes the candidate the current
version and remembers the one it replaced; **Roll back** stops a running split, or, right after
a promotion, puts the previous version back. Per-version feedback and latency come from the
answers themselves (:class:`gptstudio.models.Message`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput, ModelNotFound, NotFound
from gptstudio.models import Assistant, Conversation, Message, ModelVersion
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.access import Client
from gptstudio.services.assistant import owned_assistant
from gptstudio.services.training import gate_of

BUCKETS = 100
MIN_OVERRIDE_REASON = 10
LATENCY_SAMPLE = 10_000  # newest answers per version used for the percentiles


@dataclass(frozen=True)
class Rollout:
    """Where an assistant's traffic goes."""

    assistant_id: int
    current_version_id: int | None
    candidate_version_id: int | None
    candidate_percent: int
    previous_version_id: int | None

    @property
    def splitting(self) -> bool:
        return bool(self.candidate_version_id) and self.candidate_percent > 0


@dataclass(frozen=True)
class VersionStats:
    """How one model version does with real users."""

    version_id: int
    version: int
    status: str
    role: str  # "current", "candidate", "previous" or ""
    conversations: int
    answers: int
    thumbs_up: int
    thumbs_down: int
    latency_p50_ms: int | None
    latency_p95_ms: int | None

    @property
    def thumbs_down_rate(self) -> float | None:
        """The share of this version's answers rated down (None before any answer)."""
        return self.thumbs_down / self.answers if self.answers else None


def split_comparison(stats: list[VersionStats]) -> str:
    """One line for an A/B split: the candidate's thumbs-down rate and median latency against the
    current version's (empty unless both have answers)."""
    by_role = {s.role: s for s in stats}
    new, old = by_role.get("candidate"), by_role.get("current")
    if new is None or old is None or not new.answers or not old.answers:
        return ""

    def rate(s: VersionStats) -> str:
        return f"{100 * (s.thumbs_down_rate or 0):.0f}% ({s.thumbs_down} of {s.answers})"

    def ms(value: int | None) -> str:
        return "—" if value is None else f"{value} ms"

    return (
        f"v{new.version} against v{old.version}: thumbs down {rate(new)} vs {rate(old)}; "
        f"median latency {ms(new.latency_p50_ms)} vs {ms(old.latency_p50_ms)}."
    )


def bucket(*, assistant_id: int, conversation_key: str) -> int:
    """A stable number in 0–99 for the key: the same key always lands in the same bucket."""
    digest = hashlib.sha256(f"{assistant_id}:{conversation_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def version_for(*, assistant_id: int, conversation_key: str) -> int:
    """The model version that answers a new conversation (or an API user) with this key.

    Keys whose bucket is below ``candidate_percent`` get the candidate, every other key the
    current version; raising the percentage only moves keys from current to candidate.
    Raises NotFound when the assistant has no published version.
    """
    with session_scope() as session:
        assistant = session.get(Assistant, assistant_id)
        if assistant is None or not assistant.current_model_version_id:
            raise NotFound("This assistant has no published version yet.")
        current = assistant.current_model_version_id
        candidate = assistant.candidate_model_version_id
        if not candidate or candidate == current or assistant.candidate_percent <= 0:
            return current
        if bucket(assistant_id=assistant_id, conversation_key=conversation_key) >= (
            assistant.candidate_percent
        ):
            return current
        version = session.get(ModelVersion, candidate)
        if version is None or version.assistant_id != assistant_id or not version.adapter_path:
            return current
        return candidate


def _rollout(assistant: Assistant) -> Rollout:
    return Rollout(
        assistant_id=assistant.id or 0,
        current_version_id=assistant.current_model_version_id,
        candidate_version_id=assistant.candidate_model_version_id,
        candidate_percent=assistant.candidate_percent,
        previous_version_id=assistant.previous_model_version_id,
    )


def get_rollout(*, actor: UserPublic, assistant_id: int) -> Rollout:
    """The assistant's current, candidate and previous versions (owner only)."""
    with session_scope() as session:
        return _rollout(owned_assistant(session, actor=actor, assistant_id=assistant_id))


def _version_of(session: Session, assistant: Assistant, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None or version.assistant_id != assistant.id:
        raise ModelNotFound("There is no such model version of this assistant.")
    return version


def _check_servable(version: ModelVersion, override_reason: str) -> None:
    """A candidate must have passed the knowledge-gain gate, or carry a written override."""
    if not version.adapter_path:
        raise InvalidInput(f"Version {version.version} has no trained adapter to serve.")
    gate = gate_of(version)
    if gate.get("passed") or version.gate_override_reason:
        return
    reason = override_reason.strip()
    if len(reason) < MIN_OVERRIDE_REASON:
        raise InvalidInput(
            f"Version {version.version} did not pass the gate: "
            f"{gate.get('message', 'no knowledge gain')} Write a reason "
            f"({MIN_OVERRIDE_REASON}+ characters) to test it on real traffic anyway."
        )
    version.gate_override_reason = reason[:2000]


def set_split(
    *,
    actor: UserPublic,
    assistant_id: int,
    candidate_version_id: int | None,
    percent: int,
    override_reason: str = "",
    client: Client = Client(),
) -> Rollout:
    """Send ``percent`` % of new conversations to a candidate version (None: end the split)."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise InvalidInput("The candidate's share must be a whole number from 0 to 100.")
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        if not assistant.current_model_version_id:
            raise InvalidInput("Publish a version first; a split needs a current version.")
        if candidate_version_id is None:
            assistant.candidate_model_version_id, assistant.candidate_percent = None, 0
        else:
            if candidate_version_id == assistant.current_model_version_id:
                raise InvalidInput("That version is already the current one; pick another.")
            version = _version_of(session, assistant, candidate_version_id)
            _check_servable(version, override_reason)
            assistant.candidate_model_version_id = version.id
            assistant.candidate_percent = percent
        assistant.updated_at = utcnow()
        audit.record(
            session, action="rollout.split", actor_id=actor.id,
            target=f"assistant:{assistant_id}", ip=client.ip, user_agent=client.user_agent,
            detail={"candidate_version_id": candidate_version_id, "percent": percent,
                    "current_version_id": assistant.current_model_version_id},
        )  # fmt: skip
        return _rollout(assistant)


def _make_current(session: Session, assistant: Assistant, version: ModelVersion) -> None:
    for other in session.exec(
        select(ModelVersion).where(
            ModelVersion.assistant_id == assistant.id, ModelVersion.status == "published"
        )
    ).all():
        other.status = "retired"
    version.status = "published"
    version.published_at = version.published_at or utcnow()
    assistant.current_model_version_id = version.id
    assistant.is_published, assistant.updated_at = True, utcnow()


def promote(*, actor: UserPublic, assistant_id: int, client: Client = Client()) -> Rollout:
    """The candidate becomes the current version for all traffic; the old one is remembered."""
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        if not assistant.candidate_model_version_id:
            raise InvalidInput("There is no candidate version to promote; start a split first.")
        version = _version_of(session, assistant, assistant.candidate_model_version_id)
        _check_servable(version, "")
        previous = assistant.current_model_version_id
        _make_current(session, assistant, version)
        assistant.previous_model_version_id = previous
        assistant.candidate_model_version_id, assistant.candidate_percent = None, 0
        audit.record(
            session, action="rollout.promoted", actor_id=actor.id,
            target=f"version:{version.id}", ip=client.ip, user_agent=client.user_agent,
            detail={"assistant_id": assistant_id, "previous_version_id": previous},
        )  # fmt: skip
        return _rollout(assistant)


def rollback(*, actor: UserPublic, assistant_id: int, client: Client = Client()) -> Rollout:
    """One click: a running split stops (the candidate gets no new conversations); with no split
    running, a just-promoted version gives way to the one it replaced, which stays available as
    a candidate at 0 % so that it can be tried again."""
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        before = _rollout(assistant)
        if before.splitting:
            assistant.candidate_percent = 0
            detail = {"stopped_candidate_version_id": before.candidate_version_id}
        elif assistant.previous_model_version_id:
            previous = _version_of(session, assistant, assistant.previous_model_version_id)
            undone = assistant.current_model_version_id
            _make_current(session, assistant, previous)
            assistant.previous_model_version_id = None
            assistant.candidate_model_version_id, assistant.candidate_percent = undone, 0
            detail = {"restored_version_id": previous.id, "rolled_back_version_id": undone}
        else:
            raise InvalidInput(
                "Nothing to roll back: no split is running and no version was promoted here."
            )
        assistant.updated_at = utcnow()
        audit.record(
            session, action="rollout.rolled_back", actor_id=actor.id,
            target=f"assistant:{assistant_id}", ip=client.ip, user_agent=client.user_agent,
            detail=detail,
        )  # fmt: skip
        return _rollout(assistant)


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(round(fraction * len(ordered), 9))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def version_stats(*, actor: UserPublic, assistant_id: int) -> list[VersionStats]:
    """Per model version (newest first): conversations, answers, thumbs up and down, and answer
    latency p50/p95 (owner only)."""
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        roles = {
            assistant.current_model_version_id: "current",
            assistant.candidate_model_version_id: "candidate",
            assistant.previous_model_version_id: "previous",
        }
        versions = session.exec(
            select(ModelVersion)
            .where(ModelVersion.assistant_id == assistant_id)
            .order_by(col(ModelVersion.version).desc())
        ).all()
        return [_stats(session, v, roles.get(v.id, "")) for v in versions]


def _stats(session: Session, version: ModelVersion, role: str) -> VersionStats:
    conversations = session.exec(
        select(func.count())
        .select_from(Conversation)
        .where(Conversation.model_version_id == version.id)
    ).one()
    counts = session.exec(
        select(
            func.count(),
            func.sum(case((col(Message.feedback) > 0, 1), else_=0)),
            func.sum(case((col(Message.feedback) < 0, 1), else_=0)),
        ).where(Message.model_version_id == version.id, Message.role == "assistant")
    ).one()
    latencies = session.exec(
        select(Message.latency_ms)
        .where(
            Message.model_version_id == version.id,
            Message.role == "assistant",
            col(Message.latency_ms).is_not(None),
        )
        .order_by(col(Message.id).desc())
        .limit(LATENCY_SAMPLE)
    ).all()
    values = [int(v) for v in latencies if v is not None]
    return VersionStats(
        version_id=version.id or 0, version=version.version, status=version.status, role=role,
        conversations=int(conversations), answers=int(counts[0]), thumbs_up=int(counts[1] or 0),
        thumbs_down=int(counts[2] or 0), latency_p50_ms=percentile(values, 0.5),
        latency_p95_ms=percentile(values, 0.95),
    )  # fmt: skip

"""Deleting at the user's request: an assistant with everything built from it, or a whole account.

An assistant goes with its documents, datasets, curation runs, training jobs, model versions,
plans, subscriptions, conversations, usage and widget links, and every file under the artifacts
folder they used (uploads, parsed copies, snapshots, adapters, exports, retrieval indexes). Its
adapters are unloaded from the engine and its subscribers' Stripe subscriptions cancelled at
once (no further charge). Invoices stay (the law keeps accounting records), unlinked from it.

An account goes with its sessions, API keys, MFA secret and backup codes, single-sign-on links,
widget links, mailed tokens, login counters and conversations; a creator's assistants go with
it (as above: a user deleting their account expects what they made to go too, and subscribers'
plans are cancelled in Stripe, not left to charge for an assistant nobody runs). Billing records
stay, pseudonymised: the user row keeps only a stable pseudonym (``deleted-<hash>``) for the
invoices, subscriptions and usage rows that point at it; audit entries and stored Stripe events
have the e-mail and name replaced by it, and the addresses and browsers cleared.

Stripe is called before anything is deleted: if it fails, nothing is, and the user can retry.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import stripe
from sqlalchemy import String, cast, delete, or_, update
from sqlmodel import Session, col, select

from gptstudio import engine_client
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidCredentials, InvalidInput
from gptstudio.models import (
    ActionToken,
    ApiKey,
    Assistant,
    AuditEvent,
    Conversation,
    CurationRun,
    Dataset,
    Document,
    ExampleOverride,
    Invoice,
    LoginThrottle,
    Message,
    MfaBackupCode,
    ModelVersion,
    OAuthIdentity,
    Plan,
    Role,
    StripeEvent,
    Subscription,
    TrainingJob,
    UsageEvent,
    User,
    UserSession,
    WidgetLink,
)
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, mfa, throttle
from gptstudio.services.access import Client
from gptstudio.services.assistant import owned_assistant
from gptstudio.services.crypto import password_matches
from gptstudio.services.document import parsed_path
from gptstudio.settings import get_settings
from gptstudio.stripe_client import stripe_client, stripe_enabled, stripe_failed

log = logging.getLogger(__name__)

ACCOUNT_CONFIRMATION = "DELETE"
ENDED = ("canceled", "incomplete_expired")


class TrainingRunning(DomainError):
    status_code = 409
    type = "invalid_request_error"
    code = "trainingrunning"


@dataclass
class _Plan:
    """What deleting one assistant touches, gathered before anything changes."""

    assistant_id: int
    adapter_names: list[str] = field(default_factory=list)
    stripe_subscriptions: list[str] = field(default_factory=list)
    paths: set[Path] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)


# --- an assistant ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssistantImpact:
    """What the settings page tells a creator before they confirm."""

    name: str
    documents: int
    versions: int
    subscribers: int
    paid_subscribers: int


def assistant_impact(*, actor: UserPublic, assistant_id: int) -> AssistantImpact:
    with session_scope() as session:
        found = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        plan = _gather(session, found)
        return AssistantImpact(
            name=found.name, documents=plan.counts["documents"], versions=plan.counts["versions"],
            subscribers=plan.counts["subscribers"],
            paid_subscribers=len(plan.stripe_subscriptions),
        )  # fmt: skip


def delete_assistant(
    *, actor: UserPublic, assistant_id: int, confirm: str, client: Client = Client()
) -> None:
    """Delete an assistant and everything built from it (its owner; admins), after the creator
    typed its name. Refused while one of its training jobs is queued or running."""
    with session_scope() as session:
        found = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        if confirm.strip() != found.name:
            raise InvalidInput(f"Type the assistant's name ({found.name}) to confirm deletion.")
        _refuse_while_training(session, [found])
        plan = _gather(session, found)
    _cancel_in_stripe(plan.stripe_subscriptions)
    _unload(plan.adapter_names)
    with session_scope() as session:
        _delete_rows(session, plan)
        audit.record(
            session, action="assistant.deleted", actor_id=actor.id,
            target=f"assistant:{assistant_id}", ip=client.ip, user_agent=client.user_agent,
            detail=plan.counts,
        )  # fmt: skip
    _remove_files(plan.paths)


def _refuse_while_training(session: Session, assistants: Iterable[Assistant]) -> None:
    for assistant in assistants:
        busy = session.exec(
            select(TrainingJob.id).where(
                TrainingJob.assistant_id == assistant.id,
                col(TrainingJob.status).in_(("queued", "running")),
            )
        ).first()
        if busy is not None:
            raise TrainingRunning(
                f"A training job of {assistant.name} is still queued or running; cancel it on "
                "the Training page (or wait for it to end), then delete."
            )


def _gather(session: Session, assistant: Assistant) -> _Plan:
    aid = assistant.id or 0
    plan = _Plan(assistant_id=aid)
    root = get_settings().artifacts_dir
    plan.paths |= {
        root / "documents" / str(aid), root / "parsed" / str(aid), root / "curation" / str(aid),
        root / "datasets" / str(aid), root / "assistants" / str(aid),
    }  # fmt: skip
    documents = session.exec(select(Document).where(Document.assistant_id == aid)).all()
    for d in documents:
        if d.storage_path:
            plan.paths |= {Path(d.storage_path), parsed_path(d.storage_path)}
    for path in session.exec(select(Dataset.storage_path).where(Dataset.assistant_id == aid)):
        plan.paths.add(Path(path))
    for path in session.exec(
        select(CurationRun.result_path).where(CurationRun.assistant_id == aid)
    ):
        plan.paths.add(Path(path))
    for path in session.exec(select(TrainingJob.output_dir).where(TrainingJob.assistant_id == aid)):
        plan.paths.add(Path(path))
    versions = session.exec(select(ModelVersion).where(ModelVersion.assistant_id == aid)).all()
    for v in versions:
        plan.adapter_names.append(f"{assistant.slug}-v{v.version}")
        plan.paths |= {Path(v.adapter_path), Path(v.export_path)}
    subscriptions = session.exec(select(Subscription).where(Subscription.assistant_id == aid)).all()
    plan.stripe_subscriptions = [
        s.stripe_subscription_id
        for s in subscriptions
        if s.stripe_subscription_id and s.status not in ENDED
    ]
    plan.counts = {
        "documents": len(documents), "versions": len(versions),
        "subscribers": len(subscriptions),
        "stripe_subscriptions_cancelled": len(plan.stripe_subscriptions),
    }  # fmt: skip
    return plan


def _cancel_in_stripe(subscription_ids: list[str]) -> None:
    """Cancel each subscription now (no further invoice); one already gone at Stripe is done."""
    if not subscription_ids:
        return
    if not stripe_enabled():
        raise DomainError(
            "Paid subscriptions cannot be cancelled: payments are not configured on this "
            "installation any more. Ask the administrator."
        )
    client = stripe_client()
    for subscription_id in subscription_ids:
        try:
            client.v1.subscriptions.cancel(subscription_id)
        except stripe.InvalidRequestError as error:
            if error.code != "resource_missing":
                raise stripe_failed("cancel a subscription", error) from None
        except stripe.StripeError as error:
            raise stripe_failed("cancel a subscription", error) from None


def _unload(adapter_names: list[str]) -> None:
    """Ask the engine to stop serving the assistant's adapters (vLLM's route, which the
    project's engine serves too). An engine that is down or never loaded one has nothing to
    free: that is logged, not an error."""
    if not adapter_names:
        return
    settings = get_settings()
    key = settings.engine_api_key.get_secret_value()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(
            base_url=settings.resolved_engine_url, headers=headers, timeout=60,
            verify=engine_client._tls(),
        ) as http:  # fmt: skip
            for name in adapter_names:
                answer = http.post("/v1/unload_lora_adapter", json={"lora_name": name})
                if answer.status_code >= 400 and answer.status_code != 404:
                    log.warning("engine refused to unload %s: %s", name, answer.text[:200])
    except httpx.HTTPError as error:
        log.warning("engine not reached to unload %s: %s", adapter_names, error)


def _delete_rows(session: Session, plan: _Plan) -> None:
    aid = plan.assistant_id
    conversations = select(Conversation.id).where(Conversation.assistant_id == aid)
    subscriptions = select(Subscription.id).where(Subscription.assistant_id == aid)
    # Invoices are accounting records: kept, no longer pointing at what is deleted.
    session.execute(
        update(Invoice)
        .where(
            or_(col(Invoice.assistant_id) == aid, col(Invoice.subscription_id).in_(subscriptions))
        )
        .values(assistant_id=None, subscription_id=None)
    )
    for statement in (
        delete(Message).where(col(Message.conversation_id).in_(conversations)),
        delete(Conversation).where(col(Conversation.assistant_id) == aid),
        delete(UsageEvent).where(col(UsageEvent.assistant_id) == aid),
        delete(WidgetLink).where(col(WidgetLink.assistant_id) == aid),
        delete(Subscription).where(col(Subscription.assistant_id) == aid),
        delete(Plan).where(col(Plan.assistant_id) == aid),
        delete(ExampleOverride).where(col(ExampleOverride.assistant_id) == aid),
        delete(ModelVersion).where(col(ModelVersion.assistant_id) == aid),
        delete(TrainingJob).where(col(TrainingJob.assistant_id) == aid),
        delete(Dataset).where(col(Dataset.assistant_id) == aid),
        delete(CurationRun).where(col(CurationRun.assistant_id) == aid),
        delete(Document).where(col(Document.assistant_id) == aid),
        delete(Assistant).where(col(Assistant.id) == aid),
    ):
        session.execute(statement)


def _remove_files(paths: Iterable[Path]) -> None:
    """Remove what the deleted rows stored, only ever inside the artifacts folder."""
    root = get_settings().artifacts_dir.resolve()
    for path in paths:
        if not str(path) or str(path) == ".":
            continue
        resolved = path.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            continue
        if resolved.is_dir():
            shutil.rmtree(resolved, ignore_errors=True)
        else:
            resolved.unlink(missing_ok=True)


# --- an account --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountImpact:
    """What the account page tells a user before they confirm."""

    assistants: list[str]
    published: list[str]
    paid_subscriptions: int
    mfa_required: bool


def account_impact(*, actor: UserPublic) -> AccountImpact:
    with session_scope() as session:
        owned = session.exec(select(Assistant).where(Assistant.owner_id == actor.id)).all()
        paid = session.exec(
            select(Subscription.id).where(
                Subscription.user_id == actor.id, Subscription.stripe_subscription_id != "",
                col(Subscription.status).not_in(ENDED),
            )
        ).all()  # fmt: skip
        return AccountImpact(
            assistants=[a.name for a in owned],
            published=[a.name for a in owned if a.is_published],
            paid_subscriptions=len(paid), mfa_required=actor.mfa_enabled,
        )  # fmt: skip


def pseudonym(user_id: int) -> str:
    """The stable name a deleted user's billing records keep (keyed: not guessable from the id)."""
    secret = get_settings().secret_key.get_secret_value().encode()
    digest = hmac.new(secret, f"erased-user:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"deleted-{digest[:16]}"


def delete_account(
    *, actor: UserPublic, password: str, confirm: str, code: str = "", client: Client = Client()
) -> str:
    """Delete the actor's account after re-authentication (password, and a two-step code when
    on) and the typed word DELETE; returns the pseudonym its billing records now carry."""
    if confirm.strip() != ACCOUNT_CONFIRMATION:
        raise InvalidInput(f"Type {ACCOUNT_CONFIRMATION} to confirm that the account goes.")
    throttle.check(email=actor.email, ip=client.ip)
    with session_scope() as session:
        user = session.get(User, actor.id)
        if user is None or user.deleted_at is not None:
            raise InvalidCredentials("This account no longer exists.")
        if not password_matches(user.password_hash, password):
            throttle.record_failure(email=user.email, ip=client.ip)
            raise InvalidCredentials("The password is wrong.")
        if user.mfa_enabled_at is not None and not mfa.verify_login_code(
            session, user, code.strip(), client=client
        ):
            raise InvalidCredentials("The two-step verification code is wrong.")
        if user.role == Role.admin.value:
            others = session.exec(
                select(User.id).where(User.role == Role.admin.value, User.id != user.id,
                                      col(User.deleted_at).is_(None))
            ).first()  # fmt: skip
            if others is None:
                raise InvalidInput(
                    "You are the only admin: make another account an admin first, so the "
                    "installation is not left without one."
                )
        owned = session.exec(select(Assistant).where(Assistant.owner_id == user.id)).all()
        _refuse_while_training(session, owned)
        plans = [_gather(session, a) for a in owned]
        own_paid = session.exec(
            select(Subscription.stripe_subscription_id).where(
                Subscription.user_id == user.id, Subscription.stripe_subscription_id != "",
                col(Subscription.status).not_in(ENDED),
            )
        ).all()  # fmt: skip
        email, name = user.email, user.display_name
    _cancel_in_stripe([*own_paid, *(s for p in plans for s in p.stripe_subscriptions)])
    for plan in plans:
        _unload(plan.adapter_names)
    alias = pseudonym(actor.id)
    with session_scope() as session:
        for plan in plans:
            _delete_rows(session, plan)
        _erase_person(session, actor.id, email=email, name=name, alias=alias)
        audit.record(
            session, action="account.deleted", actor_id=actor.id, target=f"user:{actor.id}",
            detail={"pseudonym": alias, "assistants_deleted": len(plans),
                    "subscriptions_cancelled": len(own_paid)},
        )  # fmt: skip
    for plan in plans:
        _remove_files(plan.paths)
    throttle.record_success(email=email, ip="")  # the login counter under the e-mail
    return alias


def _erase_person(session: Session, user_id: int, *, email: str, name: str, alias: str) -> None:
    conversations = select(Conversation.id).where(Conversation.user_id == user_id)
    for statement in (
        delete(Message).where(col(Message.conversation_id).in_(conversations)),
        delete(Conversation).where(col(Conversation.user_id) == user_id),
        delete(UserSession).where(col(UserSession.user_id) == user_id),
        delete(ApiKey).where(col(ApiKey.user_id) == user_id),
        delete(MfaBackupCode).where(col(MfaBackupCode.user_id) == user_id),
        delete(OAuthIdentity).where(col(OAuthIdentity.user_id) == user_id),
        delete(ActionToken).where(col(ActionToken.user_id) == user_id),
        delete(WidgetLink).where(col(WidgetLink.user_id) == user_id),
        delete(LoginThrottle).where(col(LoginThrottle.key).contains(email)),
    ):
        session.execute(statement)
    # Billing records stay for the accounts, pointing at the pseudonymous row.
    session.execute(
        update(Subscription)
        .where(col(Subscription.user_id) == user_id, col(Subscription.status).not_in(ENDED))
        .values(status="canceled", canceled_at=utcnow(), cancel_at_period_end=False)
    )
    session.execute(
        update(Invoice).where(col(Invoice.user_id) == user_id).values(hosted_invoice_url="")
    )
    session.execute(
        update(UsageEvent).where(col(UsageEvent.user_id) == user_id).values(visitor_id="")
    )
    needles = [n for n in (email, name) if n and len(n) >= 3]
    _pseudonymise_audit(session, user_id, needles, alias)
    _pseudonymise_stripe_events(session, needles, alias)
    user = session.get(User, user_id)
    assert user is not None
    user.email = f"{alias}@deleted.invalid"
    user.display_name = ""
    user.password_hash = "!erased"  # noqa: S105 (not an argon2 hash: no password matches it)
    user.is_active, user.deleted_at = False, utcnow()
    user.mfa_secret, user.mfa_enabled_at, user.email_verified_at = "", None, None
    user.role = Role.subscriber.value
    user.stripe_customer_id = ""


def _mentions(column: Any, needles: list[str]) -> Any:
    return or_(*(cast(column, String).contains(n) for n in needles))


def _pseudonymise_audit(session: Session, user_id: int, needles: list[str], alias: str) -> None:
    query = select(AuditEvent).where(
        or_(
            col(AuditEvent.actor_id) == user_id,
            col(AuditEvent.target) == f"user:{user_id}",
            *([_mentions(AuditEvent.target, needles), _mentions(AuditEvent.detail, needles)]
              if needles else []),
        )
    )  # fmt: skip
    for event in session.exec(query).all():
        event.ip, event.user_agent = "", ""
        event.target = _replace(event.target, needles, alias)
        event.detail = _replace(event.detail, needles, alias)


def _pseudonymise_stripe_events(session: Session, needles: list[str], alias: str) -> None:
    if not needles:
        return
    for event in session.exec(
        select(StripeEvent).where(_mentions(StripeEvent.payload, needles))
    ).all():
        event.payload = _replace(event.payload, needles, alias)


def _replace(value: Any, needles: list[str], alias: str) -> Any:
    """``value`` (a string, or JSON of them) with every needle replaced by ``alias``."""
    if isinstance(value, str):
        for needle in needles:
            value = value.replace(needle, alias)
        return value
    if isinstance(value, dict):
        return {k: _replace(v, needles, alias) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, needles, alias) for v in value]
    return value

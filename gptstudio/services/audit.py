"""The append-only audit log of security events: recorded with the change, read by admins.

There is no update or delete function: the log is append-only by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from gptstudio.db import session_scope
from gptstudio.models import AuditEvent, Role, User
from gptstudio.models.user import UserPublic
from gptstudio.services.access import authorize


def record(
    session: Session,
    *,
    action: str,
    actor_id: int | None,
    target: str = "",
    ip: str = "",
    user_agent: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one audit event to ``session``; it commits with the change it describes."""
    session.add(
        AuditEvent(
            action=action,
            actor_id=actor_id,
            target=target,
            ip=ip[:64],
            user_agent=user_agent[:400],
            detail=detail or {},
        )
    )


@dataclass(frozen=True)
class AuditRow:
    id: int
    time: str
    action: str
    actor: str
    target: str
    ip: str
    user_agent: str
    detail: str


def list_events(
    *,
    actor: UserPublic,
    action: str = "",
    actor_email: str = "",
    since: datetime | None = None,
    limit: int = 200,
) -> list[AuditRow]:
    """The newest audit events matching the filters (admins only)."""
    authorize(actor, Role.admin)
    query = (
        select(AuditEvent, User.email)
        .join(User, col(User.id) == col(AuditEvent.actor_id), isouter=True)
        .order_by(col(AuditEvent.id).desc())
        .limit(min(max(limit, 1), 1000))
    )
    if action:
        query = query.where(col(AuditEvent.action).startswith(action))
    if actor_email:
        query = query.where(col(User.email).contains(actor_email.strip().lower()))
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    with session_scope() as session:
        return [
            AuditRow(
                id=event.id or 0,
                time=event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                action=event.action,
                actor=email or "",
                target=event.target,
                ip=event.ip,
                user_agent=event.user_agent,
                detail=json.dumps(event.detail, sort_keys=True) if event.detail else "",
            )
            for event, email in session.exec(query).all()
        ]

"""The append-only audit log of security events."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from gptstudio.models import AuditEvent


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

"""The publishing gate's margin: how much lower than the base model's a new version's held-out
perplexity must be before it is published without a written reason.

``GPTSTUDIO_GATE_MARGIN`` sets the installation's default; an admin can change it at run time on
the admin page (kept in ``app_settings``, read by the worker when a job's evaluation runs, so a
change applies to the next evaluation without a restart).
"""

from __future__ import annotations

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import AppSetting, Role
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.access import Client, authorize
from gptstudio.settings import get_settings

MARGIN_KEY = "gate.margin"


def gate_margin() -> float:
    """The margin in force: the admin's, or the installation's setting."""
    with session_scope() as session:
        row = session.get(AppSetting, MARGIN_KEY)
        value = row.value if row is not None else None
    return float(value) if isinstance(value, (int, float)) else get_settings().gate_margin


def set_gate_margin(*, actor: UserPublic, margin: float | None, client: Client = Client()) -> float:
    """Set the margin (a share, 0 ≤ margin < 1; ``None``: back to the installation's setting);
    admins only, audited. Returns the margin now in force."""
    authorize(actor, Role.admin)
    if margin is not None and not 0 <= margin < 1:
        raise InvalidInput("The gate's margin is a share from 0 % up to, not including, 100 %.")
    with session_scope() as session:
        row = session.get(AppSetting, MARGIN_KEY)
        if margin is None:
            if row is not None:
                session.delete(row)
        else:
            row = row or AppSetting(key=MARGIN_KEY)
            row.value, row.updated_at = margin, utcnow()
            session.add(row)
        audit.record(
            session, action="gate.margin_changed", actor_id=actor.id, target="policy:gate",
            ip=client.ip, user_agent=client.user_agent, detail={"margin": margin},
        )  # fmt: skip
    return gate_margin()

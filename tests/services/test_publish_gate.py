"""The publishing gate's margin: the installation's setting until an admin changes it at run time
(audited, admins only, a share below 100 %), and back to the setting when cleared."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, PermissionDenied
from gptstudio.models import AuditEvent, Role
from gptstudio.services import account, publish_gate
from gptstudio.settings import get_settings

PASSWORD = "correct horse battery"


def test_an_admin_sets_the_margin_and_clears_it_back_to_the_setting(db: str) -> None:
    admin = account.register(email="root@example.com", password=PASSWORD)
    creator = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    assert publish_gate.gate_margin() == get_settings().gate_margin

    with pytest.raises(PermissionDenied):
        publish_gate.set_gate_margin(actor=creator, margin=0.0)
    for wrong in (1.0, -0.1, 5.0):
        with pytest.raises(InvalidInput, match="up to, not including, 100 %"):
            publish_gate.set_gate_margin(actor=admin, margin=wrong)

    assert publish_gate.set_gate_margin(actor=admin, margin=0.2) == pytest.approx(0.2)
    assert publish_gate.gate_margin() == pytest.approx(0.2)
    assert publish_gate.set_gate_margin(actor=admin, margin=None) == get_settings().gate_margin
    with session_scope() as session:
        changes = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "gate.margin_changed")
            .order_by(col(AuditEvent.id))
        ).all()
        assert [event.detail for event in changes] == [{"margin": 0.2}, {"margin": None}]

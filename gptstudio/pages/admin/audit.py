"""The audit log (``/admin/audit``): who did what, from where, filtered by action and actor."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import page, submit_button
from gptstudio.components.tables import data_table
from gptstudio.models import Role
from gptstudio.pages.admin.header import admin_header
from gptstudio.pages.registry import add_page
from gptstudio.services import audit
from gptstudio.state.auth import AuthState


class AuditState(AuthState):
    events: list[dict[str, str]] = []
    action: str = ""
    actor_email: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard(Role.admin)
        if refused is not None:
            return refused
        self._reload()
        return None

    def _reload(self) -> None:
        rows = audit.list_events(
            actor=self._actor(), action=self.action, actor_email=self.actor_email
        )
        self.events = [
            {
                "time": r.time,
                "action": r.action,
                "actor": r.actor or "—",
                "target": r.target,
                "ip": r.ip,
                "agent": r.user_agent[:60],
                "detail": r.detail,
            }
            for r in rows
        ]

    @rx.event
    def filter(self, form: dict[str, Any]) -> None:
        self.action = str(form.get("action", "")).strip()
        self.actor_email = str(form.get("actor_email", "")).strip()
        self._reload()


def _event_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        *[rx.table.cell(row[key]) for key in ("time", "action", "actor", "target", "ip", "agent")],
        rx.table.cell(rx.code(row["detail"])),
        class_name="audit-row",
    )


@add_page(route="/admin/audit", title="Audit log · GPT Studio", on_load=AuditState.load)
def audit_log() -> rx.Component:
    return page(
        *admin_header("/admin/audit"),
        rx.form(
            rx.hstack(
                rx.select(
                    [
                        "login",
                        "login.failed",
                        "mfa",
                        "api_key",
                        "user",
                        "password",
                        "session",
                        "oauth",
                    ],
                    name="action",
                    placeholder="Any action",
                    id="audit-action",
                ),
                rx.input(name="actor_email", placeholder="Actor e-mail contains", id="audit-actor"),
                submit_button("Filter", id="audit-filter"),
            ),
            on_submit=AuditState.filter,
            reset_on_submit=False,
        ),
        data_table(
            AuditState.events,
            _event_row,
            headers=("Time (UTC)", "Action", "Actor", "Target", "IP", "Agent", "Detail"),
            size="1",
        ),
        max_width="1200px",
    )

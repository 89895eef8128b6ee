"""The admin page: every user and their role."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import page, submit_button, table_header
from gptstudio.models import Role, Tier
from gptstudio.pages.revenue import admin_totals_section
from gptstudio.services import account, audit, mfa
from gptstudio.state.auth import AuthState

ROLES = [role.value for role in Role]
TIERS = [tier.value for tier in Tier]


class AdminState(AuthState):
    users: list[dict[str, str]] = []
    mfa_admins: bool = False
    mfa_creators: bool = False

    def _reload(self) -> None:
        self.users = [
            {
                "id": str(u.id),
                "email": u.email,
                "name": u.display_name,
                "role": u.role.value,
                "tier": u.tier.value,
                "joined": u.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for u in account.list_users(actor=self._actor())
        ]

    @rx.event
    def load(self) -> Any:
        refused = self._guard(Role.admin)
        if refused is not None:
            return refused
        self._reload()
        required = mfa.required_roles()
        self.mfa_admins, self.mfa_creators = Role.admin in required, Role.creator in required
        return None

    @rx.event
    def set_mfa_policy(self, role: str, required: bool) -> Any:
        roles = mfa.required_roles()
        roles = roles | {Role(role)} if required else roles - {Role(role)}
        mfa.set_required_roles(actor=self._actor(), roles=roles, client=self._client())
        self.mfa_admins, self.mfa_creators = Role.admin in roles, Role.creator in roles
        return rx.toast.success("MFA policy saved.")

    @rx.event
    def change_role(self, user_id: str, role: str) -> Any:
        changed = account.set_role(
            actor=self._actor(), user_id=int(user_id), role=Role(role), client=self._client()
        )
        self._reload()
        return rx.toast.success(f"{changed.email} is now {changed.role}.")

    @rx.event
    def change_tier(self, user_id: str, tier: str) -> Any:
        changed = account.set_tier(
            actor=self._actor(), user_id=int(user_id), tier=Tier(tier), client=self._client()
        )
        self._reload()
        return rx.toast.success(f"{changed.email} is now on the {changed.tier} tier.")


def _row(user: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(user["email"]),
        rx.table.cell(user["name"]),
        rx.table.cell(
            rx.select(
                ROLES,
                value=user["role"],
                on_change=lambda role: AdminState.change_role(user["id"], role),
                size="1",
            ),
            class_name="user-role",
        ),
        rx.table.cell(
            rx.select(
                TIERS,
                value=user["tier"],
                on_change=lambda tier: AdminState.change_tier(user["id"], tier),
                size="1",
            ),
            class_name="user-tier",
        ),
        rx.table.cell(user["joined"]),
        class_name="user-row",
    )


def admin_tabs(current: str) -> rx.Component:
    return rx.hstack(
        *[
            rx.link(rx.button(label, variant="solid" if href == current else "soft"), href=href)
            for label, href in (("Users", "/admin"), ("Audit log", "/admin/audit"))
        ],
        spacing="2",
    )


def _policy() -> rx.Component:
    return rx.card(
        rx.heading("Two-step verification policy", size="4"),
        rx.hstack(
            rx.checkbox(
                "Required for admins",
                checked=AdminState.mfa_admins,
                id="mfa-admins",
                on_change=lambda value: AdminState.set_mfa_policy("admin", value),
            ),
            rx.checkbox(
                "Required for creators",
                checked=AdminState.mfa_creators,
                id="mfa-creators",
                on_change=lambda value: AdminState.set_mfa_policy("creator", value),
            ),
            spacing="5",
        ),
        width="100%",
    )


@rx.page(route="/admin", title="Admin · GPT Studio", on_load=AdminState.load)
def admin() -> rx.Component:
    return page(
        rx.heading("Administration", size="7"),
        admin_tabs("/admin"),
        admin_totals_section(),
        _policy(),
        rx.table.root(
            table_header("E-mail", "Name", "Role", "Tier (training priority)", "Joined"),
            rx.table.body(rx.foreach(AdminState.users, _row)),
            width="100%",
        ),
    )


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


@rx.page(route="/admin/audit", title="Audit log · GPT Studio", on_load=AuditState.load)
def audit_log() -> rx.Component:
    return page(
        rx.heading("Administration", size="7"),
        admin_tabs("/admin/audit"),
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
        rx.table.root(
            table_header("Time (UTC)", "Action", "Actor", "Target", "IP", "Agent", "Detail"),
            rx.table.body(rx.foreach(AuditState.events, _event_row)),
            width="100%",
            size="1",
        ),
        max_width="1200px",
    )

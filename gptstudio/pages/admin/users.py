"""The admin page (``/admin``): installation totals, the two-step verification policy, the
publishing gate, and every user with their role and tier."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import page
from gptstudio.components.tables import data_table
from gptstudio.models import Role, Tier
from gptstudio.pages.admin.gate import gate_card
from gptstudio.pages.admin.header import admin_header
from gptstudio.pages.admin.totals import admin_totals_section
from gptstudio.pages.registry import add_page
from gptstudio.services import account, mfa
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


@add_page(route="/admin", title="Admin · GPT Studio", on_load=AdminState.load)
def admin() -> rx.Component:
    return page(
        *admin_header("/admin"),
        admin_totals_section(),
        _policy(),
        gate_card(),
        data_table(
            AdminState.users,
            _row,
            headers=("E-mail", "Name", "Role", "Tier (training priority)", "Joined"),
        ),
    )

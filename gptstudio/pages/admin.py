"""The admin page: every user and their role."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import page
from gptstudio.models import Role
from gptstudio.services import account
from gptstudio.state.auth import AuthState

ROLES = [role.value for role in Role]


class AdminState(AuthState):
    users: list[dict[str, str]] = []

    def _reload(self) -> None:
        self.users = [
            {
                "id": str(u.id),
                "email": u.email,
                "name": u.display_name,
                "role": u.role.value,
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
        return None

    @rx.event
    def change_role(self, user_id: str, role: str) -> Any:
        changed = account.set_role(
            actor=self._actor(), user_id=int(user_id), role=Role(role), client=self._client()
        )
        self._reload()
        return rx.toast.success(f"{changed.email} is now {changed.role}.")


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
            )
        ),
        rx.table.cell(user["joined"]),
        class_name="user-row",
    )


@rx.page(route="/admin", title="Admin · GPT Studio", on_load=AdminState.load)
def admin() -> rx.Component:
    return page(
        rx.heading("Users", size="7"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("E-mail"),
                    rx.table.column_header_cell("Name"),
                    rx.table.column_header_cell("Role"),
                    rx.table.column_header_cell("Joined"),
                )
            ),
            rx.table.body(rx.foreach(AdminState.users, _row)),
            width="100%",
        ),
    )

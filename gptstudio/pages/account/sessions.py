"""The account's sessions tab (``/account/sessions``): every browser the user is signed in on,
signing one out, or all but this one."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import page
from gptstudio.components.tables import data_table
from gptstudio.pages.account.header import account_header
from gptstudio.pages.registry import add_page
from gptstudio.services import account
from gptstudio.state.auth import AuthState


class SessionsState(AuthState):
    sessions: list[dict[str, str]] = []

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        self._reload()
        return None

    def _reload(self) -> None:
        rows = account.list_sessions(actor=self._actor(), current_token=self.session_token)
        self.sessions = [
            {
                "id": str(r.id),
                "ip": r.ip or "unknown",
                "device": r.user_agent[:90] or "unknown",
                "created": r.created_at,
                "seen": r.last_seen_at,
                "current": "yes" if r.current else "",
            }
            for r in rows
        ]

    @rx.event
    def revoke(self, session_id: str) -> Any:
        account.revoke_session(
            actor=self._actor(), session_id=int(session_id), client=self._client()
        )
        self._reload()
        return rx.toast.success("Session signed out.")

    @rx.event
    def revoke_others(self) -> Any:
        count = account.revoke_other_sessions(
            actor=self._actor(), current_token=self.session_token, client=self._client()
        )
        self._reload()
        return rx.toast.success(f"Signed out {count} other session(s).")


def _session_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row["device"]),
        rx.table.cell(row["ip"]),
        rx.table.cell(row["created"]),
        rx.table.cell(row["seen"]),
        rx.table.cell(
            rx.cond(
                row["current"] == "yes",
                rx.badge("this browser"),
                rx.button(
                    "Sign out", size="1", variant="soft", on_click=SessionsState.revoke(row["id"])
                ),
            )
        ),
        class_name="session-row",
    )


@add_page(route="/account/sessions", title="Sessions · GPT Studio", on_load=SessionsState.load)
def sessions() -> rx.Component:
    return page(
        *account_header("/account/sessions"),
        rx.hstack(
            rx.text("Where you are signed in."),
            rx.spacer(),
            rx.button(
                "Sign out all other sessions",
                on_click=SessionsState.revoke_others,
                variant="soft",
                id="revoke-others",
            ),
            width="100%",
        ),
        data_table(
            SessionsState.sessions,
            _session_row,
            headers=("Device", "IP", "Signed in", "Last seen", ""),
        ),
    )

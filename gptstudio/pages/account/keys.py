"""The account's API keys tab (``/account/keys``): create a key with scopes and an expiry (shown
once), list and revoke keys."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.code import secret_callout
from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.components.tables import data_table
from gptstudio.pages.account.header import account_header
from gptstudio.pages.registry import add_page
from gptstudio.services import api_key
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error


class KeysState(AuthState):
    keys: list[dict[str, str]] = []
    new_key: str = ""
    error: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        self.new_key, self.error = "", ""
        self._reload()
        return None

    def _reload(self) -> None:
        self.keys = [
            {
                "id": str(k.id),
                "name": k.name,
                "prefix": k.prefix + "…",
                "scopes": " ".join(k.scopes),
                "created": f"{k.created_at:%Y-%m-%d}",
                "expires": f"{k.expires_at:%Y-%m-%d}" if k.expires_at else "never",
                "used": f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                "state": "revoked" if k.revoked else "active",
            }
            for k in api_key.list_keys(actor=self._actor())
        ]

    @rx.event
    @shows_error
    def create(self, form: dict[str, Any]) -> Any:
        scopes = [s for s in api_key.SCOPES if form.get(f"scope_{s}")]
        days = str(form.get("expires", "")).strip()
        try:
            expires_in_days = int(days) if days else None
        except ValueError:
            self.error = "Expiry must be a number of days, or empty for never."
            return None
        raw, _ = api_key.create_key(
            actor=self._actor(),
            name=str(form.get("name", "")),
            scopes=scopes,
            expires_in_days=expires_in_days,
            client=self._client(),
        )
        self.new_key, self.error = raw, ""
        self._reload()
        return None

    @rx.event
    def revoke(self, key_id: str) -> Any:
        api_key.revoke_key(actor=self._actor(), key_id=int(key_id), client=self._client())
        self._reload()
        return rx.toast.success("Key revoked.")


def _key_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row["name"]),
        rx.table.cell(rx.code(row["prefix"])),
        rx.table.cell(row["scopes"]),
        rx.table.cell(row["expires"]),
        rx.table.cell(row["used"]),
        rx.table.cell(
            rx.cond(
                row["state"] == "active",
                rx.button(
                    "Revoke",
                    size="1",
                    color_scheme="red",
                    variant="soft",
                    on_click=KeysState.revoke(row["id"]),
                ),
                rx.badge("revoked", color_scheme="gray"),
            )
        ),
        class_name="key-row",
    )


@add_page(route="/account/keys", title="API keys · GPT Studio", on_load=KeysState.load)
def keys() -> rx.Component:
    return page(
        *account_header("/account/keys"),
        form_error(KeysState.error),
        rx.cond(
            KeysState.new_key != "",
            secret_callout(
                "Your new key. Copy it now: it is not shown again.",
                KeysState.new_key,
                id_="new-key",
            ),
        ),
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("New API key", size="4"),
                    rx.input(name="name", placeholder="Name, e.g. my laptop", id="key-name"),
                    rx.hstack(
                        *[
                            rx.checkbox(
                                scope,
                                name=f"scope_{scope}",
                                id=f"scope-{scope}",
                                default_checked=scope == "chat",
                            )
                            for scope in api_key.SCOPES
                        ],
                        spacing="4",
                    ),
                    rx.input(
                        name="expires",
                        placeholder="Expires in days (empty: never)",
                        id="key-expires",
                        type="number",
                    ),
                    submit_button("Create key", id="key-create"),
                    spacing="3",
                ),
                on_submit=KeysState.create,
                reset_on_submit=True,
            ),
            width="100%",
        ),
        data_table(
            KeysState.keys,
            _key_row,
            headers=("Name", "Key", "Scopes", "Expires", "Last used", ""),
        ),
    )

"""The signed-in user's own account: two-step verification, password, sessions and API keys."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button, table_header
from gptstudio.errors import DomainError
from gptstudio.services import account, api_key, mfa
from gptstudio.state.auth import AuthState


def account_tabs(current: str) -> rx.Component:
    links = [
        ("Security", "/account"),
        ("Sessions", "/account/sessions"),
        ("API keys", "/account/keys"),
    ]
    return rx.hstack(
        *[
            rx.link(rx.button(label, variant="solid" if href == current else "soft"), href=href)
            for label, href in links
        ],
        spacing="2",
    )


class SecurityState(AuthState):
    error: str = ""
    mfa_on: bool = False
    qr: str = ""
    secret: str = ""
    backup_codes: list[str] = []
    remaining_codes: int = 0
    required: bool = False
    verified: bool = True

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        self._refresh()
        return None

    def _refresh(self) -> None:
        user = self._actor()
        self.mfa_on = user.mfa_enabled
        self.verified = user.email_verified_at is not None
        self.remaining_codes = mfa.remaining_backup_codes(actor=user) if user.mfa_enabled else 0
        self.required = user.role in mfa.required_roles()
        self.error = ""

    @rx.event
    def resend_verification(self) -> Any:
        try:
            account.resend_verification(actor=self._actor())
        except DomainError as error:
            self.error = str(error)
            return None
        return rx.toast.success("We sent you a new confirmation link.")

    @rx.event
    def start_enrolment(self) -> None:
        enrolment = mfa.begin_enrolment(actor=self._actor())
        self.qr, self.secret, self.backup_codes = enrolment.qr_data_uri, enrolment.secret, []

    @rx.event
    def confirm(self, form: dict[str, Any]) -> Any:
        try:
            codes = mfa.confirm_enrolment(
                actor=self._actor(), code=str(form.get("code", "")), client=self._client()
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh()
        self.qr, self.secret, self.backup_codes = "", "", codes
        return rx.toast.success("Two-step verification is on.")

    @rx.event
    def disable(self, form: dict[str, Any]) -> Any:
        try:
            mfa.disable(
                actor=self._actor(),
                password=str(form.get("password", "")),
                code=str(form.get("code", "")),
                client=self._client(),
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh()
        return rx.toast.success("Two-step verification is off.")

    @rx.event
    def change_password(self, form: dict[str, Any]) -> Any:
        try:
            if str(form.get("new", "")) != str(form.get("confirm", "")):
                raise account.InvalidInput("The two new passwords do not match.")
            account.change_password(
                actor=self._actor(),
                current=str(form.get("current", "")),
                new=str(form.get("new", "")),
                keep_token=self.session_token,
                client=self._client(),
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self.error = ""
        return rx.toast.success("Password changed; your other sessions were signed out.")


def _mfa_section() -> rx.Component:
    enrol = rx.vstack(
        rx.text("Scan this code with an authenticator app, then enter the 6-digit code it shows."),
        rx.image(src=SecurityState.qr, width="200px", height="200px", id="mfa-qr"),
        rx.text("Or type this key: ", rx.code(SecurityState.secret, id="mfa-secret"), size="2"),
        rx.form(
            rx.hstack(
                rx.input(name="code", placeholder="123456", id="mfa-code", required=True),
                submit_button("Turn on", id="mfa-confirm"),
            ),
            on_submit=SecurityState.confirm,
            reset_on_submit=True,
        ),
    )
    off = rx.vstack(
        rx.text("Two-step verification is off.", id="mfa-status"),
        rx.cond(
            SecurityState.required,
            rx.callout("Your role requires it: set it up to continue.", color_scheme="orange"),
        ),
        rx.cond(
            SecurityState.qr != "",
            enrol,
            rx.button(
                "Set up two-step verification",
                on_click=SecurityState.start_enrolment,
                id="mfa-start",
            ),
        ),
    )
    on = rx.vstack(
        rx.text("Two-step verification is on.", id="mfa-status"),
        rx.text(SecurityState.remaining_codes, " unused backup codes left.", size="2"),
        rx.form(
            rx.hstack(
                rx.input(name="password", type="password", placeholder="Password", required=True),
                rx.input(name="code", placeholder="Code", required=True),
                submit_button("Turn off", color_scheme="red", variant="soft"),
            ),
            on_submit=SecurityState.disable,
            reset_on_submit=True,
        ),
    )
    return rx.card(
        rx.heading("Two-step verification", size="4"),
        rx.cond(
            SecurityState.backup_codes.length() > 0,
            rx.callout.root(
                rx.vstack(
                    rx.text(
                        "Save these backup codes now; each works once and they are not shown again:"
                    ),
                    rx.grid(
                        rx.foreach(SecurityState.backup_codes, rx.code),
                        columns="2",
                        spacing="2",
                        id="backup-codes",
                    ),
                ),
                color_scheme="green",
            ),
        ),
        rx.cond(SecurityState.mfa_on, on, off),
        width="100%",
    )


def _password_section() -> rx.Component:
    return rx.card(
        rx.heading("Password", size="4"),
        rx.form(
            rx.vstack(
                rx.input(
                    name="current",
                    type="password",
                    placeholder="Current password",
                    required=True,
                    width="100%",
                ),
                rx.input(
                    name="new",
                    type="password",
                    placeholder="New password",
                    required=True,
                    width="100%",
                ),
                rx.input(
                    name="confirm",
                    type="password",
                    placeholder="Repeat the new password",
                    required=True,
                    width="100%",
                ),
                submit_button("Change password"),
                spacing="2",
            ),
            on_submit=SecurityState.change_password,
            reset_on_submit=True,
        ),
        width="100%",
    )


@rx.page(route="/account", title="Security · GPT Studio", on_load=SecurityState.load)
def security() -> rx.Component:
    return page(
        rx.heading("Your account", size="7"),
        account_tabs("/account"),
        form_error(SecurityState.error),
        rx.cond(
            ~SecurityState.verified,
            rx.callout.root(
                rx.hstack(
                    rx.text("Your e-mail is not confirmed yet."),
                    rx.button(
                        "Send the link again",
                        size="1",
                        variant="soft",
                        on_click=SecurityState.resend_verification,
                    ),
                    align="center",
                ),
                color_scheme="orange",
                id="unverified",
            ),
        ),
        _mfa_section(),
        _password_section(),
    )


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


@rx.page(route="/account/sessions", title="Sessions · GPT Studio", on_load=SessionsState.load)
def sessions() -> rx.Component:
    return page(
        rx.heading("Your account", size="7"),
        account_tabs("/account/sessions"),
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
        rx.table.root(
            table_header("Device", "IP", "Signed in", "Last seen", ""),
            rx.table.body(rx.foreach(SessionsState.sessions, _session_row)),
            width="100%",
        ),
    )


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
    def create(self, form: dict[str, Any]) -> Any:
        scopes = [s for s in api_key.SCOPES if form.get(f"scope_{s}")]
        days = str(form.get("expires", "")).strip()
        try:
            raw, _ = api_key.create_key(
                actor=self._actor(),
                name=str(form.get("name", "")),
                scopes=scopes,
                expires_in_days=int(days) if days else None,
                client=self._client(),
            )
        except ValueError:
            self.error = "Expiry must be a number of days, or empty for never."
            return None
        except DomainError as error:
            self.error = str(error)
            return None
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


@rx.page(route="/account/keys", title="API keys · GPT Studio", on_load=KeysState.load)
def keys() -> rx.Component:
    return page(
        rx.heading("Your account", size="7"),
        account_tabs("/account/keys"),
        form_error(KeysState.error),
        rx.cond(
            KeysState.new_key != "",
            rx.callout.root(
                rx.vstack(
                    rx.text("Your new key. Copy it now: it is not shown again."),
                    rx.hstack(
                        rx.code(KeysState.new_key, id="new-key"),
                        rx.button(
                            rx.icon("copy"),
                            size="1",
                            variant="soft",
                            on_click=rx.set_clipboard(KeysState.new_key),
                        ),
                    ),
                ),
                color_scheme="green",
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
        rx.table.root(
            table_header("Name", "Key", "Scopes", "Expires", "Last used", ""),
            rx.table.body(rx.foreach(KeysState.keys, _key_row)),
            width="100%",
        ),
    )

"""The account's security tab (``/account``): confirm the e-mail, turn two-step verification on
(QR code, backup codes) or off, and change the password."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.forms import password_input
from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.errors import InvalidInput
from gptstudio.pages.account.header import account_header
from gptstudio.pages.registry import add_page
from gptstudio.services import account, mfa
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error


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
    @shows_error
    def resend_verification(self) -> Any:
        account.resend_verification(actor=self._actor())
        return rx.toast.success("We sent you a new confirmation link.")

    @rx.event
    def start_enrolment(self) -> None:
        enrolment = mfa.begin_enrolment(actor=self._actor())
        self.qr, self.secret, self.backup_codes = enrolment.qr_data_uri, enrolment.secret, []

    @rx.event
    @shows_error
    def confirm(self, form: dict[str, Any]) -> Any:
        codes = mfa.confirm_enrolment(
            actor=self._actor(), code=str(form.get("code", "")), client=self._client()
        )
        self._refresh()
        self.qr, self.secret, self.backup_codes = "", "", codes
        return rx.toast.success("Two-step verification is on.")

    @rx.event
    @shows_error
    def disable(self, form: dict[str, Any]) -> Any:
        mfa.disable(
            actor=self._actor(),
            password=str(form.get("password", "")),
            code=str(form.get("code", "")),
            client=self._client(),
        )
        self._refresh()
        return rx.toast.success("Two-step verification is off.")

    @rx.event
    @shows_error
    def change_password(self, form: dict[str, Any]) -> Any:
        if str(form.get("new", "")) != str(form.get("confirm", "")):
            raise InvalidInput("The two new passwords do not match.")
        account.change_password(
            actor=self._actor(),
            current=str(form.get("current", "")),
            new=str(form.get("new", "")),
            keep_token=self.session_token,
            client=self._client(),
        )
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
                password_input("password", placeholder="Password"),
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
                password_input("current", placeholder="Current password", width="100%"),
                password_input("new", placeholder="New password", width="100%"),
                password_input("confirm", placeholder="Repeat the new password", width="100%"),
                submit_button("Change password"),
                spacing="2",
            ),
            on_submit=SecurityState.change_password,
            reset_on_submit=True,
        ),
        width="100%",
    )


@add_page(route="/account", title="Security · GPT Studio", on_load=SecurityState.load)
def security() -> rx.Component:
    return page(
        *account_header("/account"),
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

"""Forgot password, reset password (from the mailed link), and e-mail verification pages."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.forms import password_input
from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.pages.registry import add_page
from gptstudio.services import account
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error

SENT = (
    "If an account exists for that e-mail, we sent it a link to choose a new password. "
    "The link works once, for one hour."
)


class PasswordState(AuthState):
    error: str = ""
    done: str = ""

    @rx.event
    def clear(self) -> None:
        self.error, self.done = "", ""

    @rx.event
    @shows_error  # e.g. the mail server is down: say so, nothing is lost
    def request_reset(self, form: dict[str, Any]) -> None:
        self.error = ""
        account.request_password_reset(email=str(form.get("email", "")), client=self._client())
        self.done = SENT

    @rx.event
    @shows_error
    def set_new_password(self, form: dict[str, Any]) -> Any:
        self.error = ""
        password = str(form.get("password", ""))
        if password != str(form.get("confirm", "")):
            self.error = "The two passwords do not match."
            return None
        user = account.reset_password(
            token=self.router.url.query_parameters.get("token", ""),
            new_password=password,
            client=self._client(),
            keep_sso_links=bool(form.get("keep_sso")),
        )
        return [
            rx.toast.success(f"Password changed for {user.email}. Log in with the new one."),
            rx.redirect("/login"),
        ]


class VerifyState(AuthState):
    error: str = ""
    done: str = ""

    @rx.event
    @shows_error
    def verify(self) -> None:
        self.error, self.done = "", ""
        user = account.verify_email(
            token=self.router.url.query_parameters.get("token", ""), client=self._client()
        )
        self.done = f"Thank you: {user.email} is confirmed."


def _card(title: str, *children: rx.Component) -> rx.Component:
    return page(
        rx.card(
            rx.vstack(rx.heading(title, size="6"), *children, spacing="3", width="100%"),
            width="100%",
            max_width="420px",
        ),
        max_width="480px",
    )


@add_page(route="/forgot", title="Forgot password · GPT Studio", on_load=PasswordState.clear)
def forgot() -> rx.Component:
    return _card(
        "Forgot your password?",
        form_error(PasswordState.error),
        rx.cond(
            PasswordState.done != "",
            rx.callout(PasswordState.done, id="notice"),
            rx.form(
                rx.vstack(
                    rx.input(
                        name="email",
                        type="email",
                        required=True,
                        id="email",
                        placeholder="Your e-mail",
                        width="100%",
                    ),
                    submit_button("Send me a link", width="100%", id="submit"),
                    spacing="3",
                ),
                on_submit=PasswordState.request_reset,
            ),
        ),
    )


@add_page(route="/reset", title="New password · GPT Studio", on_load=PasswordState.clear)
def reset() -> rx.Component:
    return _card(
        "Choose a new password",
        form_error(PasswordState.error),
        rx.form(
            rx.vstack(
                password_input(
                    "password",
                    id="password",
                    placeholder="New password (10+ characters)",
                    width="100%",
                ),
                password_input("confirm", id="confirm", placeholder="Repeat it", width="100%"),
                rx.checkbox(
                    "Keep my single sign-on logins (only if I linked them myself)",
                    name="keep_sso",
                    id="keep-sso",
                    size="1",
                ),
                submit_button("Set password", width="100%", id="submit"),
                spacing="3",
            ),
            on_submit=PasswordState.set_new_password,
            reset_on_submit=False,
        ),
    )


@add_page(route="/verify", title="Confirm e-mail · GPT Studio", on_load=VerifyState.verify)
def verify() -> rx.Component:
    return _card(
        "E-mail confirmation",
        form_error(VerifyState.error),
        rx.cond(VerifyState.done != "", rx.callout(VerifyState.done, id="notice")),
        rx.link("Continue", href="/login"),
    )

"""Log in with e-mail and password."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page
from gptstudio.models import Role
from gptstudio.services import account
from gptstudio.services.errors import DomainError
from gptstudio.state.auth import HOME_BY_ROLE, AuthState


class LoginState(AuthState):
    error: str = ""
    submitting: bool = False

    @rx.event
    def on_load(self) -> None:
        self.error = ""
        if self.router.url.query_parameters.get("signed_out"):
            self.notice = "You are signed out."
        else:
            self.notice = ""

    @rx.event
    def submit(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            token, user = account.login(
                email=str(form.get("email", "")),
                password=str(form.get("password", "")),
                client=self._client(),
                previous_token=self.session_token,
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self.session_token = token
        self._remember(user)
        self.notice = ""
        next_path = self.router.url.query_parameters.get("next", "")
        safe_next = next_path.startswith("/") and not next_path.startswith("//")
        return rx.redirect(next_path if safe_next else HOME_BY_ROLE[Role(user.role)])


@rx.page(route="/login", title="Log in · GPT Studio", on_load=LoginState.on_load)
def login() -> rx.Component:
    return page(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("Log in", size="6"),
                    rx.cond(LoginState.notice != "", rx.callout(LoginState.notice, id="notice")),
                    form_error(LoginState.error),
                    rx.text("E-mail", as_="label", size="2", weight="medium"),
                    rx.input(name="email", type="email", required=True, id="email", width="100%"),
                    rx.text("Password", as_="label", size="2", weight="medium"),
                    rx.input(
                        name="password",
                        type="password",
                        required=True,
                        id="password",
                        width="100%",
                    ),
                    rx.button("Log in", type="submit", width="100%", id="submit"),
                    rx.text("No account yet? ", rx.link("Sign up", href="/signup"), size="2"),
                    spacing="3",
                ),
                on_submit=LoginState.submit,
                reset_on_submit=False,
            ),
            width="100%",
            max_width="420px",
        ),
        max_width="480px",
    )

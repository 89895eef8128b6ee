"""Create an account (creator or subscriber); the first account becomes the admin."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.forms import password_input
from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.models import Role
from gptstudio.pages.registry import add_page
from gptstudio.services import account
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error


class SignupState(AuthState):
    error: str = ""

    @rx.event
    def clear(self) -> None:
        self.error = ""

    @rx.event
    @shows_error
    def submit(self, form: dict[str, Any]) -> Any:
        self.error = ""
        password = str(form.get("password", ""))
        if password != str(form.get("confirm", "")):
            self.error = "The two passwords do not match."
            return None
        try:
            role = Role(str(form.get("account_type") or Role.subscriber.value))
        except ValueError as error:  # not one of the offered choices: a forged form
            self.error = str(error)
            return None
        account.register(
            email=str(form.get("email", "")),
            password=password,
            display_name=str(form.get("display_name", "")),
            role=role if role in account.SELF_SERVICE_ROLES else Role.subscriber,
            client=self._client(),
        )
        result = account.login(
            email=str(form.get("email", "")),
            password=password,
            client=self._client(),
            previous_token=self.session_token,
        )
        self._remember(result.user)
        return [
            rx.toast.success(
                f"Welcome, {result.user.display_name}! Your {result.user.role} account is ready. "
                "We sent you a link to confirm your e-mail."
            ),
            self._start_session(result.token, self.home_for(result.user)),
        ]


@add_page(route="/signup", title="Sign up · GPT Studio", on_load=SignupState.clear)
def signup() -> rx.Component:
    return page(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("Create your account", size="6"),
                    form_error(SignupState.error),
                    rx.text("E-mail", as_="label", size="2", weight="medium"),
                    rx.input(name="email", type="email", required=True, id="email", width="100%"),
                    rx.text("Name", as_="label", size="2", weight="medium"),
                    rx.input(name="display_name", id="display_name", width="100%"),
                    rx.text("Password (at least 10 characters)", as_="label", size="2"),
                    password_input("password", id="password", width="100%"),
                    rx.text("Repeat the password", as_="label", size="2"),
                    password_input("confirm", id="confirm", width="100%"),
                    rx.text("I want to", as_="label", size="2", weight="medium"),
                    rx.radio_group.root(
                        rx.vstack(
                            rx.text(
                                rx.flex(
                                    rx.radio_group.item(value="subscriber", id="type-subscriber"),
                                    "chat with expert assistants",
                                    spacing="2",
                                ),
                                as_="label",
                            ),
                            rx.text(
                                rx.flex(
                                    rx.radio_group.item(value="creator", id="type-creator"),
                                    "create and sell my own assistant",
                                    spacing="2",
                                ),
                                as_="label",
                            ),
                        ),
                        name="account_type",
                        default_value="subscriber",
                    ),
                    submit_button("Sign up", width="100%", id="submit"),
                    rx.text("Already registered? ", rx.link("Log in", href="/login"), size="2"),
                    spacing="3",
                ),
                on_submit=SignupState.submit,
                reset_on_submit=False,
            ),
            width="100%",
            max_width="420px",
        ),
        max_width="480px",
    )

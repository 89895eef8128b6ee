"""Log in: e-mail and password, then a TOTP or backup code for accounts with MFA, and the
password proof that links a single-sign-on identity to an existing account."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from gptstudio.components.forms import labelled_input
from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.errors import DomainError
from gptstudio.pages.registry import add_page
from gptstudio.services import account, oidc
from gptstudio.state.auth import LOGIN_NOTICES, AuthState
from gptstudio.state.errors import shows_error


class LoginState(AuthState):
    error: str = ""
    mfa_step: bool = False
    link_email: str = ""
    link_provider: str = ""
    providers: list[dict[str, str]] = []
    _mfa_ticket: str = ""
    _link_ticket: str = ""

    @rx.event
    @shows_error
    def on_load(self) -> None:
        params = self.router.url.query_parameters
        self.error, self.mfa_step, self._mfa_ticket = "", False, params.get("mfa", "")
        self.notice = LOGIN_NOTICES.get(params.get("reason", ""), "")
        self.providers = [{"name": p.name, "label": p.label} for p in oidc.enabled_providers()]
        # After a single sign-on whose e-mail has an account: the ticket is in a short-lived
        # HttpOnly cookie (never in the URL), which this server-side handler can read.
        cookie = oidc.link_ticket_from(self.router.headers.cookie)
        self._link_ticket = cookie if params.get("sso") == "link" else ""
        self.link_email, self.link_provider = "", ""
        if params.get("sso") == "link" and not cookie:
            self.error = "The request to link your single sign-on expired; start it again."
        if self._mfa_ticket:
            self.mfa_step = True
        if self._link_ticket:
            try:
                pending = oidc.read_link_ticket(self._link_ticket)
            except DomainError as error:
                self.error, self._link_ticket = str(error), ""
                return
            self.link_email, self.link_provider = pending.email, pending.provider_label
        if params.get("error"):
            self.error = params["error"][:300]

    def _signed_in(self, result: account.LoginResult) -> Any:
        self._remember(result.user)
        self.notice, self.mfa_step, self._mfa_ticket = "", False, ""
        next_path = self.router.url.query_parameters.get("next", "")
        safe_next = next_path.startswith("/") and not next_path.startswith("//")
        return self._start_session(
            result.token, next_path if safe_next else self.home_for(result.user)
        )

    @rx.event
    @shows_error
    def submit(self, form: dict[str, Any]) -> Any:
        self.error = ""
        result = account.login(
            email=str(form.get("email", "")),
            password=str(form.get("password", "")),
            client=self._client(),
            previous_token=self.session_token,
        )
        if self._link_ticket:
            oidc.link_after_password(
                ticket=self._link_ticket, user=result.user, client=self._client()
            )
            self._link_ticket, self.link_email = "", ""
        if result.mfa_ticket:
            self._mfa_ticket, self.mfa_step = result.mfa_ticket, True
            return None
        return self._signed_in(result)

    @rx.event
    def start_sso(self, name: str) -> Any:
        """Leave the single-page app for the provider (a same-host redirect stays inside it)."""
        provider = oidc.get_provider(name)
        next_path = self.router.url.query_parameters.get("next", "")
        query = f"?{urlencode({'next': next_path})}" if next_path.startswith("/") else ""
        url = json.dumps(f"/auth/oidc/{provider.name}/login{query}")
        return rx.call_script(f"window.location.assign({url})")

    @rx.event
    @shows_error
    def submit_code(self, form: dict[str, Any]) -> Any:
        self.error = ""
        result = account.complete_mfa_login(
            ticket=self._mfa_ticket,
            code=str(form.get("code", "")),
            client=self._client(),
            previous_token=self.session_token,
        )
        return self._signed_in(result)


def _password_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.cond(
                LoginState.link_email != "",
                rx.callout.root(
                    rx.callout.text(
                        "An account with ",
                        LoginState.link_email,
                        " already exists. Enter its password to link your ",
                        LoginState.link_provider,
                        " sign-in to it.",
                    ),
                    id="link-notice",
                ),
            ),
            labelled_input("E-mail", name="email", type="email", required=True, id="email"),
            labelled_input(
                "Password", name="password", type="password", required=True, id="password"
            ),
            submit_button("Log in", width="100%", id="submit"),
            rx.hstack(
                rx.link("Forgot your password?", href="/forgot", size="2"),
                rx.spacer(),
                rx.text("No account? ", rx.link("Sign up", href="/signup"), size="2"),
                width="100%",
            ),
            spacing="3",
        ),
        on_submit=LoginState.submit,
        reset_on_submit=False,
    )


def _sso_buttons() -> rx.Component:
    return rx.foreach(
        LoginState.providers,
        lambda p: rx.button(
            "Continue with ",
            p["label"],
            variant="outline",
            width="100%",
            id="sso-" + p["name"],
            on_click=LoginState.start_sso(p["name"]),
        ),
    )


def _code_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.text("Enter the 6-digit code from your authenticator app, or a backup code."),
            labelled_input(
                "Code",
                name="code",
                required=True,
                id="code",
                auto_complete="one-time-code",
                auto_focus=True,
            ),
            submit_button("Verify", width="100%", id="submit-code"),
            spacing="3",
        ),
        on_submit=LoginState.submit_code,
        reset_on_submit=True,
    )


@add_page(route="/login", title="Log in · GPT Studio", on_load=LoginState.on_load)
def login() -> rx.Component:
    return page(
        rx.card(
            rx.vstack(
                rx.heading(
                    rx.cond(LoginState.mfa_step, "Two-step verification", "Log in"), size="6"
                ),
                rx.cond(LoginState.notice != "", rx.callout(LoginState.notice, id="notice")),
                form_error(LoginState.error),
                rx.cond(
                    LoginState.mfa_step,
                    _code_form(),
                    rx.vstack(_password_form(), _sso_buttons(), spacing="3", width="100%"),
                ),
                spacing="3",
                width="100%",
            ),
            width="100%",
            max_width="420px",
        ),
        max_width="480px",
    )

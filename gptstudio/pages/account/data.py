"""The account's data tab (``/account/data``): download everything as one archive, or delete the
account (password, a two-step code when it is on, and the typed word DELETE), after being told
what goes with it (a creator's assistants, paid plans) and what stays (billing records, under a
pseudonym)."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from gptstudio.components.forms import password_input
from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.errors import DomainError
from gptstudio.pages.account.header import account_header
from gptstudio.pages.registry import add_page
from gptstudio.services import erasure
from gptstudio.state.auth import AuthState

EXPORT_URL = "/api/account/export"


class DataState(AuthState):
    error: str = ""
    assistants: list[str] = []
    published: list[str] = []
    paid_subscriptions: int = 0
    needs_code: bool = False
    deleting: bool = False

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        impact = erasure.account_impact(actor=self._actor())
        self.assistants, self.published = impact.assistants, impact.published
        self.paid_subscriptions, self.needs_code = impact.paid_subscriptions, impact.mfa_required
        self.error, self.deleting = "", False
        return None

    @rx.event(background=True)
    async def delete_account(self, form: dict[str, Any]) -> Any:
        async with self:
            if self.deleting:
                return None
            self.deleting, self.error = True, ""
            actor, client = self._actor(), self._client()
        try:
            await asyncio.to_thread(
                erasure.delete_account, actor=actor, client=client,
                password=str(form.get("password", "")), confirm=str(form.get("confirm", "")),
                code=str(form.get("code", "")),
            )  # fmt: skip
        except DomainError as error:
            async with self:
                self.error, self.deleting = str(error), False
            return None
        async with self:
            self._forget()
        # The session is gone with the account; the HttpOnly cookie is cleared by an HTTP answer.
        return rx.call_script("window.location.assign('/auth/logout?reason=account_deleted')")


def _export_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Download your data", size="4"),
            rx.text(
                "One zip archive with your profile, every conversation and its messages, your "
                "usage, subscriptions and invoices, your API keys (names and dates, never the "
                "keys), your sign-in sessions and the security log about you; for creators, "
                "each assistant's settings, its documents' list and the files you uploaded.",
                size="2",
            ),
            # The link itself, styled as a button (a button inside a link would take the click).
            rx.button(
                rx.el.a(
                    "Download all my data",
                    href=EXPORT_URL,
                    download=True,
                    id="export-data",
                    # a document request, not a client-side route: the browser downloads it
                    reload_document=True,
                ),
                as_child=True,
                variant="soft",
            ),
            spacing="3",
        ),
        width="100%",
    )


def _impact() -> rx.Component:
    return rx.vstack(
        rx.cond(
            DataState.assistants.length() > 0,
            rx.callout(
                rx.text(
                    "Your assistants are deleted with your account, with their documents, "
                    "datasets, trained versions and files: ",
                    rx.text.strong(DataState.assistants.join(", ")),
                    ". Their subscribers' paid plans are cancelled in Stripe at once "
                    "(no further charge); they lose access.",
                ),
                icon="triangle_alert",
                color_scheme="red",
                id="delete-assistants",
            ),
        ),
        rx.cond(
            DataState.paid_subscriptions > 0,
            rx.text(
                "Your ",
                DataState.paid_subscriptions,
                " paid subscription(s) are cancelled at once, without refund of the period.",
                size="2",
            ),
        ),
        rx.text(
            "Your sessions, API keys, two-step secret, single-sign-on links, conversations and "
            "personal details are deleted. Invoices and usage records are kept, as the law "
            "requires for accounting, under a pseudonym without your e-mail or name.",
            size="2",
        ),
        spacing="2",
        width="100%",
    )


def _delete_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Delete your account", size="4", color_scheme="red"),
            _impact(),
            rx.form(
                rx.vstack(
                    password_input("password", placeholder="Your password", width="100%"),
                    rx.cond(
                        DataState.needs_code,
                        rx.input(
                            name="code",
                            placeholder="Two-step code or backup code",
                            id="delete-code",
                            width="100%",
                        ),
                    ),
                    rx.input(
                        name="confirm",
                        placeholder="Type DELETE to confirm",
                        id="delete-confirm",
                        width="100%",
                        required=True,
                        auto_complete="off",
                    ),
                    submit_button(
                        "Delete my account for good",
                        color_scheme="red",
                        loading=DataState.deleting,
                        id="delete-account",
                    ),
                    spacing="2",
                    width="100%",
                ),
                on_submit=DataState.delete_account,
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


@add_page(route="/account/data", title="Your data · GPT Studio", on_load=DataState.load)
def data() -> rx.Component:
    return page(
        *account_header("/account/data"),
        form_error(DataState.error),
        _export_card(),
        _delete_card(),
    )

"""Where embedded Checkout returns (``/checkout/return?session_id=cs_…``): the Checkout
Session's status read from Stripe, and the subscription it made once Stripe's webhook has
activated it (polled, as the pricing page does after the hosted page); then on to the chat."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from gptstudio.components.layout import page
from gptstudio.errors import DomainError
from gptstudio.pages.registry import add_page
from gptstudio.services import subscription
from gptstudio.state.auth import AuthState

WAIT_FOR_WEBHOOK_SECONDS = 60


class CheckoutReturnState(AuthState):
    session_id: str = ""
    checkout_status: str = ""  # open, complete, expired; "missing" when unreadable
    payment_status: str = ""
    assistant_id: int = 0
    assistant_name: str = ""
    assistant_slug: str = ""
    plan_name: str = ""
    tier: str = ""
    status: str = ""
    period_end: str = ""
    trial_end: str = ""
    notice: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        self.session_id = self.router.url.query_parameters.get("session_id", "")
        try:
            self._refresh()
        except DomainError as error:
            self.checkout_status, self.notice = "missing", str(error)
            return None
        if self.checkout_status == "complete" and not self._active():
            self.notice = "Payment received. Your plan is being activated…"
            return CheckoutReturnState.wait_for_activation
        return None

    def _active(self) -> bool:
        return self.status in ("active", "trialing")

    def _refresh(self) -> None:
        self._apply(subscription.checkout_status(actor=self._actor(), session_id=self.session_id))

    def _apply(self, found: subscription.CheckoutStatus) -> None:
        self.checkout_status, self.payment_status = found.status, found.payment_status
        self.assistant_id, self.assistant_name = found.assistant_id, found.assistant_name
        self.assistant_slug, self.plan_name = found.assistant_slug, found.plan_name
        current = found.current
        paid = bool(current and current.paid)
        self.tier = current.tier if current and paid else ""
        self.status = current.status if current and paid else ""
        end = current.current_period_end if current else None
        trial = current.trial_end if current else None
        self.period_end = end.strftime("%Y-%m-%d") if end else ""
        self.trial_end = trial.strftime("%Y-%m-%d") if trial else ""
        self.notice = {
            "open": "The payment was not completed: nothing was charged.",
            "expired": "This checkout expired or was cancelled: nothing was charged.",
        }.get(found.status, "")

    @rx.event(background=True)
    async def wait_for_activation(self) -> None:
        """Stripe's webhook writes the subscription; poll the local row until it has."""
        async with self:
            actor, session_id = self._actor(), self.session_id
        for _ in range(WAIT_FOR_WEBHOOK_SECONDS):
            await asyncio.sleep(1)
            # Stripe is read in a thread: a slow Stripe must not stall the event loop.
            found = await asyncio.to_thread(
                subscription.checkout_status, actor=actor, session_id=session_id
            )
            async with self:
                self._apply(found)
                if self._active():
                    self.notice = ""
                    return
        async with self:
            self.notice = (
                "Your payment is recorded but the plan is not active yet; refresh in a minute."
            )


def _subscription() -> rx.Component:
    s = CheckoutReturnState
    return rx.card(
        rx.vstack(
            rx.heading("You are subscribed", size="5"),
            rx.text(
                "Plan: ", rx.text.strong(s.plan_name, id="return-plan"), " for ", s.assistant_name
            ),
            rx.hstack(rx.text("Status:"), rx.badge(s.status, id="return-status")),
            rx.cond(s.status == "trialing", rx.text("Free trial until ", s.trial_end, ".")),
            rx.cond(
                (s.status == "active") & (s.period_end != ""),
                rx.text("Renews on ", s.period_end, ".", size="2", color_scheme="gray"),
            ),
            rx.hstack(
                rx.link(
                    rx.button("Start chatting", id="start-chatting"),
                    href="/chat?assistant=" + s.assistant_slug,
                ),
                rx.link(
                    "Your plan and billing",
                    href="/pricing?assistant=" + s.assistant_id.to_string(),
                    size="2",
                ),
                align="center",
                spacing="4",
            ),
            spacing="3",
        ),
        width="100%",
        id="return-subscription",
    )


@add_page(route="/checkout/return", title="Checkout · GPT Studio", on_load=CheckoutReturnState.load)
def checkout_return_page() -> rx.Component:
    s = CheckoutReturnState
    return page(
        rx.heading("Checkout", size="7"),
        rx.cond(s.notice != "", rx.callout(s.notice, icon="info", id="return-notice")),
        rx.cond(
            (s.checkout_status == "complete") & ((s.status == "active") | (s.status == "trialing")),
            _subscription(),
        ),
        rx.cond(
            (s.checkout_status == "open") | (s.checkout_status == "expired"),
            rx.link(
                "Back to the plans of " + s.assistant_name,
                href="/pricing?assistant=" + s.assistant_id.to_string(),
                id="return-pricing",
            ),
        ),
        rx.cond(s.checkout_status == "missing", rx.link("Your assistants", href="/home")),
    )

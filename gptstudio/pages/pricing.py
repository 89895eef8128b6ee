"""The pricing page of one assistant (``/pricing?assistant=N``): its tiers (monthly or annual),
the subscriber's current plan and status, Subscribe and Manage subscription (Stripe Customer
Portal).

Subscribe opens Stripe Checkout *inside the page* (embedded mode, mounted with Stripe.js; Stripe
then sends the subscriber to ``/checkout/return``) where a publishable key is configured; where
there is none, or Stripe.js cannot load, it goes to Stripe's hosted Checkout page, which comes
back with ``?checkout=success|cancelled``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page
from gptstudio.components.stripe_checkout import embedded_checkout
from gptstudio.errors import DomainError
from gptstudio.models.plan import PlanPublic
from gptstudio.money import format_money
from gptstudio.pages.registry import add_page
from gptstudio.services import subscription
from gptstudio.settings import get_settings
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error
from gptstudio.stripe_client import NOT_CONFIGURED, embedded_checkout_enabled

WAIT_FOR_WEBHOOK_SECONDS = 60


def _price(cents: int, currency: str) -> str:
    return format_money(cents, currency) if cents else ""


def _plan(p: PlanPublic) -> dict[str, str]:
    features = [
        f"{p.included_tokens:,} tokens per period" if p.included_tokens else "Unlimited tokens",
        f"{p.requests_per_minute} requests per minute" if p.requests_per_minute else "No rate cap",
        "Every published version" if p.all_versions else "The live version",
    ]
    if p.overage_cents_per_1k_tokens:
        features.append(
            f"Overage {_price(p.overage_cents_per_1k_tokens, p.currency)} per 1k tokens"
        )
    if p.trial_days:
        features.append(f"{p.trial_days}-day free trial")
    return {
        "id": str(p.id), "key": p.key, "name": p.name,
        "monthly": _price(p.monthly_price_cents, p.currency) or "Free",
        "annual": _price(p.annual_price_cents, p.currency)
        or ("Free" if not p.monthly_price_cents else "—"),
        "free": "yes" if p.monthly_price_cents == 0 and p.annual_price_cents == 0 else "",
        "features": " · ".join(features),
    }  # fmt: skip


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else ""


class PricingState(AuthState):
    assistant_id: int = 0
    assistant_name: str = ""
    plans: list[dict[str, str]] = []
    annual: bool = False
    current_plan_id: str = ""
    current_tier: str = ""
    status: str = ""
    paid: bool = False
    period_end: str = ""
    trial_end: str = ""
    grace_ends: str = ""
    cancel_at_period_end: bool = False
    effective_plan: str = ""
    stripe_enabled: bool = False
    checkout_notice: str = ""
    error: str = ""
    # Embedded Checkout: Stripe.js's address and key, and the open session mounted in the page.
    embedded: bool = False
    stripe_js_url: str = ""
    publishable_key: str = ""
    stripe_js_failed: bool = False
    client_secret: str = ""
    checkout_session_id: str = ""
    checkout_plan: str = ""
    checkout_plan_name: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        query = self.router.url.query_parameters
        try:
            self.assistant_id = int(query.get("assistant", "0"))
            self._refresh()
        except (ValueError, DomainError):
            return [rx.toast.error("There is no such assistant."), rx.redirect("/home")]
        outcome = query.get("checkout", "")
        self.checkout_notice = {
            "success": "Payment received. Your plan is being activated…",
            "cancelled": "Checkout cancelled: nothing was charged.",
        }.get(outcome, "")
        if outcome == "success" and not (self.paid and self.status in ("active", "trialing")):
            return PricingState.wait_for_activation
        if outcome == "success":
            self.checkout_notice = f"You are subscribed to {self.current_tier}."
        return None

    def _refresh(self) -> None:
        settings = get_settings()
        self.embedded = embedded_checkout_enabled()
        self.stripe_js_url, self.publishable_key = (
            settings.stripe_js_url,
            settings.stripe_publishable_key,
        )
        view = subscription.pricing(actor=self._actor(), assistant_id=self.assistant_id)
        self.assistant_name, self.stripe_enabled = view.assistant_name, view.stripe_enabled
        self.plans = [_plan(p) for p in view.plans]
        self.effective_plan = view.effective_plan
        current = view.current
        self.current_plan_id = str(current.plan_id or "") if current else ""
        self.current_tier = current.tier if current else ""
        self.status = current.status if current else ""
        self.paid = bool(current and current.paid)
        self.period_end = _day(current.current_period_end) if current else ""
        self.trial_end = _day(current.trial_end) if current else ""
        self.grace_ends = _day(current.grace_ends) if current else ""
        self.cancel_at_period_end = bool(current and current.cancel_at_period_end)

    @rx.event(background=True)
    async def wait_for_activation(self) -> None:
        """Stripe's webhook activates the plan; poll the local state until it has."""
        for _ in range(WAIT_FOR_WEBHOOK_SECONDS):
            await asyncio.sleep(1)
            async with self:
                self._refresh()
                if self.paid and self.status in ("active", "trialing"):
                    self.checkout_notice = f"You are subscribed to {self.current_tier}."
                    return
        async with self:
            self.checkout_notice = (
                "Your payment is recorded but the plan is not active yet; refresh in a minute."
            )

    @rx.event
    def toggle_annual(self, value: bool) -> None:
        self.annual = value

    # Stripe calls run in a thread: a slow Stripe must not stall the event loop (every user's UI).
    @rx.event
    @shows_error
    async def subscribe(self, plan_id: str, free: str) -> Any:
        self.error = ""
        if free == "yes":
            await asyncio.to_thread(
                subscription.subscribe_free, actor=self._actor(), plan_id=int(plan_id)
            )
            self._refresh()
            return rx.toast.success("You are on the free plan.")
        interval = "year" if self.annual else "month"
        if self.checkout_session_id:  # another plan chosen while one was open: close that
            await self._close_embedded()
        if self.embedded and not self.stripe_js_failed:
            made = await asyncio.to_thread(
                subscription.start_embedded_checkout, actor=self._actor(), plan_id=int(plan_id),
                interval=interval,
            )  # fmt: skip
            self.client_secret, self.checkout_session_id = made.client_secret, made.session_id
            self.checkout_plan = plan_id
            self.checkout_plan_name = next(
                (p["name"] for p in self.plans if p["id"] == plan_id), ""
            )
            return None
        return await self._hosted(plan_id, interval)

    async def _hosted(self, plan_id: str, interval: str) -> Any:
        url = await asyncio.to_thread(
            subscription.start_checkout, actor=self._actor(), plan_id=int(plan_id),
            interval=interval,
        )  # fmt: skip
        return rx.call_script(f"window.location.assign({json.dumps(url)})")

    async def _close_embedded(self) -> None:
        """Expire the open embedded session (it can no longer be paid) and unmount it."""
        session_id, self.client_secret, self.checkout_session_id = self.checkout_session_id, "", ""
        if session_id:
            await asyncio.to_thread(
                subscription.expire_checkout, actor=self._actor(), session_id=session_id
            )

    @rx.event
    @shows_error
    async def close_checkout(self) -> None:
        self.error = ""
        await self._close_embedded()

    @rx.event
    @shows_error
    async def stripe_js_unavailable(self, reason: str) -> Any:
        """Stripe.js could not load: Stripe's hosted page instead (now, if a checkout was open)."""
        self.stripe_js_failed = True
        plan_id = self.checkout_plan if self.checkout_session_id else ""
        if not plan_id:
            return None
        await self._close_embedded()
        return [
            rx.toast.info("The payment form could not load here; continuing on Stripe's page."),
            await self._hosted(plan_id, "year" if self.annual else "month"),
        ]

    @rx.event
    @shows_error
    async def manage(self) -> Any:
        self.error = ""
        url = await asyncio.to_thread(
            subscription.portal_url, actor=self._actor(), assistant_id=self.assistant_id
        )
        return rx.call_script(f"window.location.assign({json.dumps(url)})")


def _status() -> rx.Component:
    s = PricingState
    return rx.card(
        rx.hstack(
            rx.text("Your plan: ", rx.text.strong(s.effective_plan, id="current-plan")),
            rx.cond(s.status != "", rx.badge(s.status, id="current-status")),
            rx.spacer(),
            rx.cond(
                s.paid,
                rx.button("Manage subscription", on_click=s.manage, variant="soft", id="manage"),
            ),
            width="100%",
            align="center",
        ),
        rx.cond(
            s.status == "trialing",
            rx.text("Free trial until ", s.trial_end, ".", size="2", id="trial-note"),
        ),
        rx.cond(
            s.cancel_at_period_end,
            rx.text(
                "Cancels at the end of the period (", s.period_end, ").", size="2", id="cancel-note"
            ),
        ),
        rx.cond(
            s.status == "past_due",
            rx.callout(
                "Your last payment failed. Update your payment method under Manage subscription "
                "before " + s.grace_ends + ", or your access is reduced to the free tier.",
                icon="triangle_alert",
                color_scheme="red",
                id="past-due",
            ),
        ),
        rx.cond(
            (s.paid & (s.status != "trialing") & (s.status != "past_due")) & (s.period_end != ""),
            rx.text("Renews on ", s.period_end, ".", size="2", color_scheme="gray"),
        ),
        width="100%",
    )


def _plan_card(p: rx.Var[dict[str, str]]) -> rx.Component:
    s = PricingState
    is_current = (s.current_plan_id == p["id"]) & (
        (s.status == "active") | (s.status == "trialing") | (s.status == "past_due")
    )
    return rx.card(
        rx.vstack(
            rx.heading(p["name"], size="5"),
            rx.text(
                rx.cond(s.annual, p["annual"], p["monthly"]),
                rx.cond(p["free"] == "yes", "", rx.cond(s.annual, " / year", " / month")),
                size="6",
                weight="bold",
                class_name="plan-price",
            ),
            rx.text(p["features"], size="2", color_scheme="gray"),
            rx.cond(
                is_current,
                rx.badge("Current plan", color_scheme="green", class_name="plan-current"),
                rx.button(
                    rx.cond(p["free"] == "yes", "Choose free", "Subscribe"),
                    on_click=s.subscribe(p["id"], p["free"]),
                    disabled=~rx.State.is_hydrated,
                    id="subscribe-" + p["key"],
                ),
            ),
            spacing="3",
        ),
        class_name="plan-card",
        id="plan-" + p["key"],
        min_width="14em",
    )


def _embedded_checkout() -> rx.Component:
    """Stripe.js loads with the page; a session, once started, is mounted in this card."""
    s = PricingState
    return rx.card(
        rx.hstack(
            rx.heading("Subscribe to ", s.checkout_plan_name, size="4"),
            rx.spacer(),
            rx.button(
                "Cancel",
                on_click=s.close_checkout,
                variant="soft",
                color_scheme="gray",
                id="close-checkout",
            ),
            width="100%",
            align="center",
        ),
        embedded_checkout(
            script_url=s.stripe_js_url,
            publishable_key=s.publishable_key,
            client_secret=s.client_secret,
            on_unavailable=s.stripe_js_unavailable,
            id="embedded-checkout",
            width="100%",
        ),
        width="100%",
        id="checkout-card",
        display=rx.cond(s.client_secret != "", "block", "none"),
    )


@add_page(route="/pricing", title="Pricing · GPT Studio", on_load=PricingState.load)
def pricing_page() -> rx.Component:
    s = PricingState
    return page(
        rx.hstack(
            rx.link("← Assistants", href="/home", size="2"),
            rx.heading("Plans for ", s.assistant_name, size="7"),
            align="center",
            spacing="4",
        ),
        rx.cond(
            s.checkout_notice != "",
            rx.callout(s.checkout_notice, icon="info", id="checkout-notice"),
        ),
        form_error(s.error),
        _status(),
        rx.cond(s.embedded, _embedded_checkout()),
        rx.hstack(
            rx.text("Monthly", size="2"),
            rx.switch(checked=s.annual, on_change=s.toggle_annual, id="annual-toggle"),
            rx.text("Annual", size="2"),
            align="center",
        ),
        rx.cond(
            s.plans.length() > 0,
            rx.flex(rx.foreach(s.plans, _plan_card), wrap="wrap", spacing="4", width="100%"),
            rx.text("This assistant has no plans: it is free to use.", id="no-plans"),
        ),
        rx.cond(
            ~s.stripe_enabled,
            rx.text(NOT_CONFIGURED, size="2", color_scheme="gray", id="no-stripe"),
        ),
    )

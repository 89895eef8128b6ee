"""The creator's own GPT Studio tier (``/studio/tier``): the tier they are on, what they use of
it this month (training GPU-hours, storage, assistants, concurrent jobs), the tiers on sale with
Upgrade (Stripe Checkout) and Manage your tier (Stripe Customer Portal); ``?checkout=success``
comes back from Checkout and waits for the webhook."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page
from gptstudio.models import Role
from gptstudio.models.creator_tier import CreatorTierPublic
from gptstudio.money import format_money
from gptstudio.pages.registry import add_page
from gptstudio.services import creator_tier
from gptstudio.services.creator_tier import gpu_hours
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error
from gptstudio.stripe_client import NOT_CONFIGURED

WAIT_FOR_WEBHOOK_SECONDS = 60


def _limit(value: int | None, unit: str) -> str:
    return "unlimited" if value is None else f"{value:,} {unit}"


def tier_card(t: CreatorTierPublic) -> dict[str, str]:
    """One tier as the page shows it."""
    compute = (
        "Unlimited training compute"
        if t.included_gpu_hours is None
        else f"{gpu_hours(t.included_gpu_hours * 3600)} of training a month"
    )
    if t.overage_cents_per_gpu_hour:
        compute += f", then {format_money(t.overage_cents_per_gpu_hour, t.currency)}/GPU-hour"
    features = [
        compute,
        f"Storage: {_limit(t.storage_mb, 'MB')}",
        f"Assistants: {_limit(t.max_assistants, '')}".rstrip(),
        f"Training jobs at once: {_limit(t.max_concurrent_jobs, '')}".rstrip(),
        f"Queue priority {t.queue_priority}",
    ]
    return {
        "key": t.key,
        "name": t.name,
        "price": format_money(t.monthly_price_cents, t.currency) + " / month"
        if t.monthly_price_cents
        else "Free",
        "free": "yes" if not t.monthly_price_cents else "",
        "features": " · ".join(features),
    }


class TierState(AuthState):
    tiers: list[dict[str, str]] = []
    current_key: str = ""
    current_name: str = ""
    status: str = ""
    paid: bool = False
    period_end: str = ""
    cancel_at_period_end: bool = False
    meters: list[dict[str, str]] = []
    stripe_enabled: bool = False
    checkout_notice: str = ""
    error: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard(Role.creator)
        if refused is not None:
            return refused
        self.error = ""
        self._refresh()
        outcome = self.router.url.query_parameters.get("checkout", "")
        self.checkout_notice = {
            "success": "Payment received. Your tier is being activated…",
            "cancelled": "Checkout cancelled: nothing was charged.",
        }.get(outcome, "")
        if outcome == "success" and not self.paid:
            return TierState.wait_for_activation
        if outcome == "success":
            self.checkout_notice = f"You are on the {self.current_name} tier."
        return None

    def _refresh(self) -> None:
        view = creator_tier.usage(actor=self._actor())
        self.tiers = [tier_card(t) for t in view.tiers]
        tier = view.tier
        self.current_key = tier.key if tier else self._actor().tier.value
        self.current_name = tier.name if tier else "No tier limits"
        self.status, self.paid = view.status, view.paid
        self.cancel_at_period_end = view.cancel_at_period_end
        end = view.current_period_end
        self.period_end = end.strftime("%Y-%m-%d") if end else ""
        self.stripe_enabled = view.stripe_enabled
        included = (
            "unlimited"
            if tier is None or tier.included_gpu_hours is None
            else gpu_hours(tier.included_gpu_hours * 3600)
        )
        self.meters = [
            {"id": "meter-compute", "label": "Training compute this month",
             "value": f"{gpu_hours(view.compute_seconds)} of {included}"
             + (f" ({gpu_hours(view.overage_seconds)} overage)" if view.overage_seconds else "")},
            {"id": "meter-storage", "label": "Storage",
             "value": f"{view.storage_bytes / 1_048_576:,.1f} MB of "
             + _limit(tier.storage_mb if tier else None, "MB")},
            {"id": "meter-assistants", "label": "Assistants",
             "value": f"{view.assistants} of "
             + _limit(tier.max_assistants if tier else None, "").strip()},
            {"id": "meter-jobs", "label": "Training jobs queued or running",
             "value": f"{view.active_jobs} of "
             + _limit(tier.max_concurrent_jobs if tier else None, "").strip()},
        ]  # fmt: skip

    @rx.event(background=True)
    async def wait_for_activation(self) -> None:
        """Stripe's webhook activates the tier; poll the local state until it has."""
        for _ in range(WAIT_FOR_WEBHOOK_SECONDS):
            await asyncio.sleep(1)
            async with self:
                self._refresh()
                if self.paid:
                    self.checkout_notice = f"You are on the {self.current_name} tier."
                    return
        async with self:
            self.checkout_notice = (
                "Your payment is recorded but the tier is not active yet; refresh in a minute."
            )

    @rx.event
    @shows_error
    async def upgrade(self, key: str) -> Any:
        self.error = ""
        url = await asyncio.to_thread(creator_tier.start_checkout, actor=self._actor(), key=key)
        return rx.call_script(f"window.location.assign({json.dumps(url)})")

    @rx.event
    @shows_error
    async def manage(self) -> Any:
        self.error = ""
        url = await asyncio.to_thread(creator_tier.portal_url, actor=self._actor())
        return rx.call_script(f"window.location.assign({json.dumps(url)})")


def _meter(m: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.hstack(
        rx.text(m["label"], size="2", width="16em"),
        rx.text(m["value"], size="2", weight="medium", id=m["id"]),
        width="100%",
    )


def _status() -> rx.Component:
    s = TierState
    return rx.card(
        rx.hstack(
            rx.text("Your tier: ", rx.text.strong(s.current_name, id="current-tier")),
            rx.cond(s.status != "", rx.badge(s.status, id="tier-status")),
            rx.spacer(),
            rx.cond(
                s.paid,
                rx.button("Manage your tier", on_click=s.manage, variant="soft", id="tier-manage"),
            ),
            width="100%",
            align="center",
        ),
        rx.vstack(rx.foreach(s.meters, _meter), spacing="1", margin_top="0.75em"),
        rx.cond(
            s.cancel_at_period_end,
            rx.text("Cancels at the end of the period (", s.period_end, ").", size="2"),
        ),
        width="100%",
    )


def _tier_card(t: rx.Var[dict[str, str]]) -> rx.Component:
    s = TierState
    return rx.card(
        rx.vstack(
            rx.heading(t["name"], size="5"),
            rx.text(t["price"], size="6", weight="bold", class_name="tier-price"),
            rx.text(t["features"], size="2", color_scheme="gray"),
            rx.cond(
                s.current_key == t["key"],
                rx.badge("Current tier", color_scheme="green", class_name="tier-current"),
                rx.cond(
                    t["free"] == "yes",
                    rx.text("Cancel a paid tier to return here", size="1", color_scheme="gray"),
                    rx.button(
                        "Upgrade",
                        on_click=s.upgrade(t["key"]),
                        disabled=~rx.State.is_hydrated,
                        id="upgrade-" + t["key"],
                    ),
                ),
            ),
            spacing="3",
        ),
        id="tier-" + t["key"],
        min_width="14em",
    )


@add_page(route="/studio/tier", title="Your tier · GPT Studio", on_load=TierState.load)
def tier_page() -> rx.Component:
    s = TierState
    return page(
        rx.heading("Your GPT Studio tier", size="7"),
        rx.cond(
            s.checkout_notice != "",
            rx.callout(s.checkout_notice, icon="info", id="checkout-notice"),
        ),
        form_error(s.error),
        _status(),
        rx.cond(
            s.tiers.length() > 0,
            rx.flex(rx.foreach(s.tiers, _tier_card), wrap="wrap", spacing="4", width="100%"),
            rx.text("This installation defines no tiers: nothing is limited.", id="no-tiers"),
        ),
        rx.cond(
            ~s.stripe_enabled,
            rx.text(NOT_CONFIGURED, size="2", color_scheme="gray", id="no-stripe"),
        ),
    )

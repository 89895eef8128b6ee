"""Installation totals for the admin page: users, assistants, subscriptions, revenue, tokens
and training jobs (one card each), with tokens and revenue per day over 30 days. The section
loads itself when it mounts (:class:`AdminTotalsState`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import reflex as rx

from gptstudio.components.charts import admin_totals_view, money_text, series
from gptstudio.db import utcnow
from gptstudio.errors import DomainError
from gptstudio.money import format_money
from gptstudio.services import analytics, creator_tier
from gptstudio.state.auth import AuthState


def _breakdown(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {key.replace('_', ' ')}" for key, n in counts.items()) or "none"


def _money(revenue: dict[str, int]) -> str:
    return ", ".join(format_money(c, cur) for cur, c in sorted(revenue.items())) or "0.00"


def admin_cards(
    totals: analytics.AdminTotals,
    split: tuple[dict[str, int], dict[str, int]] = ({}, {}),
) -> list[dict[str, str]]:
    subscriptions = totals.subscriptions_by_status
    return [
        {
            "label": "Users",
            "value": str(sum(totals.users_by_role.values())),
            "hint": _breakdown(totals.users_by_role),
            "id": "total-users",
        },
        {
            "label": "Assistants",
            "value": str(totals.assistants),
            "hint": f"{totals.published} published",
            "id": "total-assistants",
        },
        {
            "label": "Subscriptions",
            "value": str(sum(subscriptions.values())),
            "hint": _breakdown(subscriptions),
            "id": "total-subscriptions",
        },
        {
            "label": "Revenue (30 days)",
            "value": money_text(totals.revenue_30d_cents),
            "hint": "all invoices, paid minus refunded (creators' and platform's)",
            "id": "total-revenue",
        },
        {
            "label": "Platform revenue (30 days)",
            "value": _money(split[0]),
            "hint": "creators' tiers + application fees",
            "id": "total-platform-revenue",
        },
        {
            "label": "Creators' revenue (30 days)",
            "value": _money(split[1]),
            "hint": "their assistants' invoices, less the fees",
            "id": "total-creator-revenue",
        },
        {
            "label": "Tokens (30 days)",
            "value": f"{totals.tokens_30d:,}",
            "hint": "input + output",
            "id": "total-tokens",
        },
        {
            "label": "Training jobs",
            "value": str(sum(totals.training_jobs_by_status.values())),
            "hint": _breakdown(totals.training_jobs_by_status),
            "id": "total-jobs",
        },
    ]


class AdminTotalsState(AuthState):
    cards: list[dict[str, str]] = []
    days: list[dict[str, Any]] = []
    currencies: list[dict[str, str]] = []

    @rx.event
    def load(self) -> None:
        """Loaded when the section mounts; the admin page itself checks the role and
        redirects, so a refusal here only leaves the section empty."""
        try:
            totals = analytics.admin_totals(actor=self._actor())
        except DomainError:
            return
        since = utcnow() - timedelta(days=30)
        split = creator_tier.revenue_split(actor=self._actor(), since=since)
        self.cards = admin_cards(totals, split)
        currencies = sorted({c for d in totals.days for c in d.revenue_cents})
        self.currencies = series({c: c.upper() for c in currencies})
        self.days = [
            {"day": d.day.strftime("%m-%d"), "tokens": d.tokens}
            | {c: d.revenue_cents.get(c, 0) / 100 for c in currencies}
            for d in totals.days
        ]


def admin_totals_section() -> rx.Component:
    """Installation totals (cards and charts) for the admin page."""
    return rx.box(
        admin_totals_view(
            cards=AdminTotalsState.cards,
            days=AdminTotalsState.days,
            currencies=AdminTotalsState.currencies,
        ),
        on_mount=AdminTotalsState.load,
        width="100%",
    )

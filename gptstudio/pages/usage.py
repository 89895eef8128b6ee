"""The subscriber's usage page (/usage): for each assistant they subscribe to or used, tokens
per day against the plan's quota, what is left and when it resets, the plan and a way to
upgrade; then their invoices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from gptstudio.components.charts import PALETTE
from gptstudio.components.layout import page
from gptstudio.components.tables import data_table
from gptstudio.money import format_money
from gptstudio.pages.registry import add_page
from gptstudio.services import analytics
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import toasts_error

DAYS = 30
USAGE_SERIES = (
    ("input", "input tokens", PALETTE[0]),
    ("output", "output tokens", PALETTE[2]),
    ("period", "used this period", PALETTE[4]),
)


@dataclass
class UsageCard:
    assistant_id: str = ""
    name: str = ""
    plan: str = ""
    status: str = ""
    notice: str = ""
    used: str = ""
    quota: str = ""
    remaining: str = ""
    resets: str = ""
    limited: bool = False
    limit: int = 0
    upgrade: str = ""
    chart: list[dict[str, Any]] = field(default_factory=list)


def usage_card(usage: analytics.SubscriberUsage) -> UsageCard:
    """What the page shows of one assistant's usage."""
    remaining = usage.remaining
    unlimited = usage.tokens_per_period is None
    return UsageCard(
        assistant_id=str(usage.assistant_id),
        name=usage.assistant_name,
        plan=usage.plan_name,
        status=usage.status,
        notice="" if usage.allowed else usage.reason,
        used=f"{usage.used_in_period:,}",
        quota="Unlimited" if unlimited else f"{usage.tokens_per_period:,}",
        remaining="Unlimited" if remaining is None else f"{remaining:,}",
        resets=usage.period_end.strftime("%Y-%m-%d") if usage.period_end else "—",
        limited=not unlimited,
        limit=usage.tokens_per_period or 0,
        upgrade=usage.upgrade_path,
        chart=[
            {
                "day": point.day.strftime("%m-%d"),
                "input": point.input_tokens,
                "output": point.output_tokens,
                **({} if point.period_tokens is None else {"period": point.period_tokens}),
            }
            for point in usage.days
        ],
    )


def invoice_row(invoice: analytics.InvoiceRow) -> dict[str, str]:
    charged = invoice.amount_paid_cents or invoice.amount_due_cents
    refunded = invoice.amount_refunded_cents
    return {
        "date": invoice.created_at.strftime("%Y-%m-%d"),
        "assistant": invoice.assistant_name,
        "amount": format_money(charged, invoice.currency)
        + (f" (refunded {format_money(refunded, invoice.currency)})" if refunded else ""),
        "status": invoice.status.replace("_", " "),
        "url": invoice.hosted_invoice_url,
    }


class UsageState(AuthState):
    cards: list[UsageCard] = []
    invoices: list[dict[str, str]] = []

    @rx.event
    @toasts_error
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        actor = self._actor()
        usage = analytics.subscriber_usage(actor=actor, days=DAYS)
        invoices = analytics.subscriber_invoices(actor=actor)
        self.cards = [usage_card(u) for u in usage]
        self.invoices = [invoice_row(i) for i in invoices]
        return None


def _figure(label: str, value: rx.Var[str], class_name: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.text(value, size="4", weight="bold", class_name=class_name),
        spacing="0",
    )


def _chart(card: rx.Var[UsageCard]) -> rx.Component:
    chart = rx.recharts.area_chart(
        rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
        rx.recharts.x_axis(data_key="day"),
        rx.recharts.y_axis(),
        rx.recharts.graphing_tooltip(),
        rx.recharts.legend(),
        *[
            rx.recharts.area(
                data_key=key,
                name=name,
                stroke=color,
                fill=color,
                **({"stack_id": "day"} if key != "period" else {}),
            )
            for key, name, color in USAGE_SERIES
        ],
        rx.cond(
            card.limited,
            rx.recharts.reference_line(
                y=card.limit,
                stroke="#e5484d",
                stroke_dasharray="6 3",
                label="quota",
                if_overflow="extendDomain",
                class_name="quota-line",
            ),
        ),
        data=card.chart,
        width="100%",
        height=240,
    )
    return rx.box(chart, width="100%", class_name="usage-chart")


def _usage(card: rx.Var[UsageCard]) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading(card.name, size="4"),
            rx.badge(card.plan, class_name="usage-plan"),
            rx.badge(card.status, color_scheme="gray"),
            rx.spacer(),
            rx.link(
                rx.button("Upgrade or change plan", size="1", variant="soft"),
                href=card.upgrade,
                class_name="usage-upgrade",
            ),
            width="100%",
            align="center",
        ),
        rx.cond(card.notice != "", rx.callout(card.notice, color_scheme="orange")),
        rx.hstack(
            _figure("Used this period", card.used, "usage-used"),
            _figure("Quota", card.quota, "usage-quota"),
            _figure("Remaining", card.remaining, "usage-remaining"),
            _figure("Resets on", card.resets, "usage-resets"),
            spacing="6",
        ),
        _chart(card),
        width="100%",
        class_name="usage-card",
    )


def _invoice_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row["date"]),
        rx.table.cell(row["assistant"]),
        rx.table.cell(row["amount"]),
        rx.table.cell(rx.badge(row["status"])),
        rx.table.cell(
            rx.cond(
                row["url"] != "",
                rx.link("View", href=row["url"], is_external=True),
                rx.text("—"),
            )
        ),
        class_name="invoice-row",
    )


def _invoices() -> rx.Component:
    return data_table(
        UsageState.invoices,
        _invoice_row,
        headers=("Date", "Assistant", "Amount", "Status", "Invoice"),
    )


@add_page(route="/usage", title="Usage · GPT Studio", on_load=UsageState.load)
def usage_page() -> rx.Component:
    return page(
        rx.heading("Your usage", size="7"),
        rx.text(
            f"Tokens per day over the last {DAYS} days; the dashed line is your plan's quota for "
            "the current period.",
            color_scheme="gray",
        ),
        rx.cond(
            UsageState.cards.length() > 0,
            rx.vstack(rx.foreach(UsageState.cards, _usage), width="100%", spacing="4"),
            rx.text(
                "You have not used or subscribed to any assistant yet.",
                color_scheme="gray",
                id="empty-usage",
            ),
        ),
        rx.card(
            rx.heading("Invoices", size="4"),
            rx.cond(
                UsageState.invoices.length() > 0,
                _invoices(),
                rx.text("No invoices yet.", color_scheme="gray", id="no-invoices"),
            ),
            width="100%",
        ),
    )

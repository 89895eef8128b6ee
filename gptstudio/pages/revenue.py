"""The creator's revenue page (/revenue): subscribers, MRR, ARR, churn, ARPU, lifetime value,
trial → paid conversion and refunds, cohort retention, revenue over time and per assistant, usage
per assistant and per model version, and CSV exports of subscriptions and invoices; payouts
(Stripe Connect) in :mod:`gptstudio.pages.revenue_payouts`."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.charts import (
    chart_card,
    kpi_card,
    money_text,
    pivot,
    series,
    series_chart,
)
from gptstudio.components.layout import page
from gptstudio.models import Role
from gptstudio.pages.registry import add_page
from gptstudio.pages.revenue_payouts import payouts_card
from gptstudio.services import analytics, revenue
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import toasts_error

WINDOWS = ["30", "90", "365"]
NO_VERSION = "none"


def _days(metrics: analytics.CreatorMetrics) -> list[str]:
    return [d.isoformat() for d in analytics.each_day(metrics.since, metrics.until)]


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.1f} %"


class RevenueState(AuthState):
    window: str = "90"
    subscribers: str = ""
    mrr: str = ""
    churn: str = ""
    arpu: str = ""
    revenue_total: str = ""
    churn_detail: str = ""
    currencies: list[dict[str, str]] = []
    revenue_days: list[dict[str, Any]] = []
    revenue_assistants: list[dict[str, Any]] = []
    assistant_series: list[dict[str, str]] = []
    usage_assistants: list[dict[str, Any]] = []
    version_series: list[dict[str, str]] = []
    usage_versions: list[dict[str, Any]] = []
    arr: str = ""
    ltv: str = ""
    trial_conversion: str = ""
    trial_detail: str = ""
    refunds: str = ""
    refund_detail: str = ""
    cohort_series: list[dict[str, str]] = []
    cohort_rows: list[dict[str, Any]] = []

    # A refusal (the session ended or the role changed meanwhile) is said in a toast.
    @rx.event
    @toasts_error
    def load(self) -> Any:
        refused = self._guard(Role.creator)
        if refused is not None:
            return refused
        self._refresh()
        return None

    @rx.event
    @toasts_error
    def set_window(self, window: str) -> None:
        self.window = window if window in WINDOWS else "90"
        self._refresh()

    def _refresh(self) -> None:
        m = analytics.creator_metrics(actor=self._actor(), days=int(self.window))
        self.subscribers = str(m.active_subscribers)
        self.mrr, self.arpu = money_text(m.mrr_cents), money_text(m.arpu_cents)
        self.churn = _percent(m.churn)
        self.churn_detail = (
            f"{m.canceled_last_30_days} canceled in 30 days of {m.active_30_days_ago} active before"
        )
        self.revenue_total = money_text(m.revenue_cents)
        days = _days(m)
        currencies = {c: c.upper() for c in sorted({r.currency for r in m.revenue_by_day})}
        currencies |= {r.currency: r.currency.upper() for r in m.revenue_by_assistant}
        self.currencies = series(currencies)
        self.revenue_days = pivot(
            ((r.day.isoformat(), r.currency, r.cents / 100) for r in m.revenue_by_day),
            x_values=days, keys=currencies, x_key="day",
        )  # fmt: skip
        names = list(m.assistants.values())
        label = {  # two assistants may share a name: their bars must not merge
            aid: name if names.count(name) == 1 else f"{name} #{aid}"
            for aid, name in m.assistants.items()
        }
        self.revenue_assistants = pivot(
            ((label[r.assistant_id], r.currency, r.cents / 100) for r in m.revenue_by_assistant),
            x_values=list(label.values()), keys=currencies, x_key="assistant",
        )  # fmt: skip
        self._usage(m, days)
        self._views(m)

    def _views(self, m: analytics.CreatorMetrics) -> None:
        v = revenue.revenue_views(actor=self._actor(), metrics=m, days=int(self.window))
        self.arr = money_text(v.arr_cents)
        self.ltv = "— (no churn yet)" if v.ltv_cents is None else money_text(v.ltv_cents)
        self.trial_conversion = _percent(v.trials.rate)
        self.trial_detail = (
            f"{v.trials.converted} of {v.trials.ended} ended trials paid; "
            f"{v.trials.running} in trial now"
        )
        self.refunds = money_text(v.refunds.refunded_cents) or "none"
        rates = " · ".join(
            f"{_percent(share)} of {currency.upper()} paid"
            for currency, share in v.refunds.rate.items()
        )
        invoices = "invoice" if v.refunds.count == 1 else "invoices"
        self.refund_detail = f"{v.refunds.count} {invoices} refunded" + (
            f" ({rates})" if rates else ""
        )
        self.cohort_series = series({f"c{c.month}": f"{c.month} ({c.size})" for c in v.cohorts})
        # A cohort's months not observable yet are left out (a gap), never drawn as 0 %.
        months = max((len(c.retention) for c in v.cohorts), default=0)
        self.cohort_rows = [
            {"month": f"Month {k}"}
            | {f"c{c.month}": round(100 * c.retention[k], 1) for c in v.cohorts
               if k < len(c.retention)}
            for k in range(months)
        ]  # fmt: skip

    @rx.event
    @toasts_error
    def export_subscriptions(self) -> Any:
        text = revenue.subscriptions_csv(actor=self._actor())
        return rx.download(data=text, filename="subscriptions.csv", mime_type="text/csv")

    @rx.event
    @toasts_error
    def export_invoices(self) -> Any:
        text = revenue.invoices_csv(actor=self._actor())
        return rx.download(data=text, filename="invoices.csv", mime_type="text/csv")

    def _usage(self, m: analytics.CreatorMetrics, days: list[str]) -> None:
        assistants = {f"a{aid}": name for aid, name in m.assistants.items()}
        self.assistant_series = series(assistants)
        self.usage_assistants = pivot(
            (
                (u.day.isoformat(), f"a{u.assistant_id}", u.total_tokens)
                for u in m.usage_by_day
            ),
            x_values=days, keys=assistants, x_key="day",
        )  # fmt: skip
        used = {u.model_version_id for u in m.usage_by_day}
        versions = {f"v{vid}": name for vid, name in m.versions.items() if vid in used}
        if None in used:
            versions[NO_VERSION] = "no version recorded"
        self.version_series = series(versions)
        self.usage_versions = pivot(
            (
                (
                    u.day.isoformat(),
                    f"v{u.model_version_id}" if u.model_version_id else NO_VERSION,
                    u.total_tokens,
                )
                for u in m.usage_by_day
            ),
            x_values=days, keys=versions, x_key="day",
        )  # fmt: skip


def _kpis() -> rx.Component:
    return rx.flex(
        kpi_card(
            "Subscribers",
            RevenueState.subscribers,
            id="kpi-subscribers",
            hint="Active, trialing, or past due within the grace period",
        ),
        kpi_card(
            "MRR",
            RevenueState.mrr,
            id="kpi-mrr",
            hint="Paid plans, annual price / 12; trials and free plans excluded",
        ),
        kpi_card(
            "Churn (30 days)",
            RevenueState.churn,
            id="kpi-churn",
            hint="Subscriptions canceled / active 30 days ago",
        ),
        kpi_card("ARPU", RevenueState.arpu, id="kpi-arpu", hint="MRR / paying subscribers"),
        kpi_card("ARR", RevenueState.arr, id="kpi-arr", hint="MRR × 12"),
        kpi_card(
            "Lifetime value",
            RevenueState.ltv,
            id="kpi-ltv",
            hint="ARPU / monthly churn: what a paying subscriber brings before leaving",
        ),
        kpi_card(
            "Trial → paid",
            RevenueState.trial_conversion,
            id="kpi-trials",
            hint=RevenueState.trial_detail,
        ),
        kpi_card(
            "Refunds", RevenueState.refunds, id="kpi-refunds", hint=RevenueState.refund_detail
        ),
        wrap="wrap",
        spacing="3",
        width="100%",
    )


@add_page(route="/revenue", title="Revenue · GPT Studio", on_load=RevenueState.load)
def revenue_page() -> rx.Component:
    return page(
        rx.hstack(
            rx.heading("Revenue and usage", size="7"),
            rx.spacer(),
            rx.text("Last", size="2"),
            rx.select(
                WINDOWS,
                value=RevenueState.window,
                on_change=RevenueState.set_window,
                id="revenue-window",
                size="1",
            ),
            rx.text("days", size="2"),
            rx.button(
                rx.icon("download", size=14),
                "Subscriptions CSV",
                on_click=RevenueState.export_subscriptions,
                variant="soft",
                size="1",
                id="export-subscriptions",
            ),
            rx.button(
                rx.icon("download", size=14),
                "Invoices CSV",
                on_click=RevenueState.export_invoices,
                variant="soft",
                size="1",
                id="export-invoices",
            ),
            width="100%",
            align="center",
        ),
        _kpis(),
        payouts_card(),
        rx.text(
            RevenueState.churn_detail,
            " · revenue in the period: ",
            RevenueState.revenue_total,
            size="2",
            color_scheme="gray",
            id="revenue-total",
        ),
        chart_card(
            "Revenue per day",
            series_chart(
                "bar",
                data=RevenueState.revenue_days,
                lines=RevenueState.currencies,
                x_key="day",
                stacked=True,
                id="revenue-chart",
            ),
            hint="Paid minus refunded, on the invoice's day; one bar per currency.",
        ),
        chart_card(
            "Cohort retention",
            series_chart(
                "line",
                data=RevenueState.cohort_rows,
                lines=RevenueState.cohort_series,
                x_key="month",
                id="cohort-chart",
            ),
            hint="Paid subscriptions by the month they started (size in brackets): the percent "
            "still subscribed 1, 2, … months after their start, over those old enough.",
        ),
        chart_card(
            "Revenue per assistant",
            series_chart(
                "bar",
                data=RevenueState.revenue_assistants,
                lines=RevenueState.currencies,
                x_key="assistant",
                id="revenue-by-assistant",
            ),
        ),
        chart_card(
            "Tokens per assistant",
            series_chart(
                "area",
                data=RevenueState.usage_assistants,
                lines=RevenueState.assistant_series,
                x_key="day",
                stacked=True,
                id="usage-by-assistant",
            ),
        ),
        chart_card(
            "Tokens per model version",
            series_chart(
                "area",
                data=RevenueState.usage_versions,
                lines=RevenueState.version_series,
                x_key="day",
                stacked=True,
                id="usage-by-version",
            ),
        ),
        max_width="1200px",
    )

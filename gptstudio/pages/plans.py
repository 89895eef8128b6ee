"""The creator's plans for one assistant (``/assistant/plans?id=N``): add, edit, archive and
restore tiers (prices, trial, included tokens, requests per minute, model access, overage), each
with its Stripe sync status."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

import reflex as rx

from gptstudio.components.layout import assistant_header, form_error, page, submit_button
from gptstudio.components.tables import data_table
from gptstudio.errors import InvalidInput
from gptstudio.pages.registry import add_page
from gptstudio.services.plan import (
    PlanInput,
    PlanRow,
    archive_plan,
    list_plans,
    restore_plan,
    save_plan,
)
from gptstudio.state.errors import shows_error
from gptstudio.state.owned_assistant import AssistantPageState
from gptstudio.stripe_client import NOT_CONFIGURED_FOR_OPERATORS, stripe_enabled

EMPTY_DRAFT = {
    "id": "", "key": "", "name": "", "monthly": "", "annual": "", "trial_days": "0",
    "included_tokens": "", "rpm": "", "all_versions": "", "overage": "", "currency": "usd",
}  # fmt: skip


def _cents(text: str, label: str) -> int:
    """``"19"`` or ``"19.99"`` (in the plan's currency) as cents; empty is 0."""
    text = text.strip().replace(",", "")
    if not text:
        return 0
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{label} must be an amount such as 19 or 19.99.") from None
    cents = amount * 100
    if amount < 0 or cents != cents.to_integral_value():
        raise InvalidInput(f"{label} must be a positive amount with at most two decimals.")
    return int(cents)


def _count(text: str, label: str) -> int | None:
    text = text.strip().replace(",", "").replace("_", "")
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"{label} must be a whole number, or empty for unlimited.")
    return int(text)


def _amount(cents: int) -> str:
    return f"{cents / 100:.2f}" if cents else ""


def _row(row: PlanRow) -> dict[str, str]:
    p = row.plan
    return {
        "id": str(p.id), "key": p.key, "name": p.name, "currency": p.currency,
        "monthly": _amount(p.monthly_price_cents), "annual": _amount(p.annual_price_cents),
        "trial_days": str(p.trial_days),
        "included_tokens": "" if p.included_tokens is None else str(p.included_tokens),
        "rpm": "" if p.requests_per_minute is None else str(p.requests_per_minute),
        "all_versions": "yes" if p.all_versions else "",
        "overage": _amount(p.overage_cents_per_1k_tokens),
        "archived": "yes" if p.is_archived else "",
        "subscribers": str(row.subscribers), "sync": row.sync_status,
        "synced": "yes" if row.synced else "",
    }  # fmt: skip


class PlansState(AssistantPageState):
    plans: list[dict[str, str]] = []
    draft: dict[str, str] = dict(EMPTY_DRAFT)
    form_key: int = 0
    stripe_enabled: bool = False

    @rx.event
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        self.stripe_enabled = stripe_enabled()
        self._refresh()
        return None

    def _refresh(self) -> None:
        rows = list_plans(actor=self._actor(), assistant_id=self.assistant_id)
        self.plans = [_row(r) for r in rows]

    def _set_draft(self, draft: dict[str, str]) -> None:
        self.draft, self.error = draft, ""
        self.form_key += 1

    @rx.event
    def edit(self, plan_id: str) -> None:
        found = next((p for p in self.plans if p["id"] == plan_id), None)
        if found is not None:
            self._set_draft({k: found.get(k, "") for k in EMPTY_DRAFT})

    @rx.event
    def new_plan(self) -> None:
        self._set_draft(dict(EMPTY_DRAFT))

    @rx.event
    @shows_error
    async def save(self, form: dict[str, Any]) -> Any:
        self.error = ""
        text = {k: str(v) for k, v in form.items()}
        try:
            data = PlanInput(
                key=text.get("key", ""),
                name=text.get("name", ""),
                monthly_price_cents=_cents(text.get("monthly", ""), "The monthly price"),
                annual_price_cents=_cents(text.get("annual", ""), "The annual price"),
                trial_days=_count(text.get("trial_days", ""), "Trial days") or 0,
                included_tokens=_count(text.get("included_tokens", ""), "Included tokens"),
                requests_per_minute=_count(text.get("rpm", ""), "Requests per minute"),
                all_versions=text.get("all_versions", "") in ("on", "true", "yes"),
                overage_cents_per_1k_tokens=_cents(text.get("overage", ""), "The overage price"),
                currency=text.get("currency", "") or "usd",
            )
            plan_id = int(self.draft["id"]) if self.draft.get("id") else None
            saved = await asyncio.to_thread(  # it syncs to Stripe: off the event loop
                save_plan, actor=self._actor(), assistant_id=self.assistant_id,
                data=data, plan_id=plan_id,
            )  # fmt: skip
        finally:
            self._refresh()
        self._set_draft(dict(EMPTY_DRAFT))
        return rx.toast.success(f"Plan {saved.plan.name} saved. {saved.sync_status}.")

    @rx.event
    @shows_error
    async def archive(self, plan_id: str) -> Any:
        self.error = ""
        try:
            outcome = await asyncio.to_thread(
                archive_plan, actor=self._actor(), plan_id=int(plan_id)
            )
        finally:
            self._refresh()
        if outcome == "archived":
            return rx.toast.info("Archived: its subscribers keep it; it is no longer sold.")
        return rx.toast.info("Deleted (nobody had subscribed to it).")

    @rx.event
    @shows_error
    async def restore(self, plan_id: str) -> Any:
        self.error = ""
        try:
            await asyncio.to_thread(restore_plan, actor=self._actor(), plan_id=int(plan_id))
        finally:
            self._refresh()
        return rx.toast.success("The plan is on sale again.")


def _field(label: str, name: str, placeholder: str = "", **props: Any) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2"),
        rx.input(
            name=name,
            id=f"plan-{name}",
            placeholder=placeholder,
            default_value=PlansState.draft[name],
            **props,
        ),
        spacing="1",
    )


def _editor() -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading(rx.cond(PlansState.draft["id"] != "", "Edit tier", "New tier"), size="4"),
            rx.spacer(),
            rx.button("New tier", variant="soft", size="1", on_click=PlansState.new_plan),
            width="100%",
        ),
        rx.form(
            rx.grid(
                _field("Key", "key", "pro"),
                _field("Name", "name", "Professional"),
                _field("Currency", "currency", "usd"),
                _field("Monthly price", "monthly", "19.00 (empty: free)"),
                _field("Annual price", "annual", "190.00"),
                _field("Trial days", "trial_days", "0"),
                _field("Included tokens / period", "included_tokens", "empty: unlimited"),
                _field("Requests per minute", "rpm", "empty: unlimited"),
                _field("Overage price per 1k tokens", "overage", "0.02 (empty: refuse)"),
                columns=rx.breakpoints(initial="1", xs="2", sm="3"),
                spacing="3",
                width="100%",
            ),
            rx.hstack(
                rx.checkbox(
                    "Access to every published version (not only the live one)",
                    name="all_versions",
                    id="plan-all_versions",
                    default_checked=PlansState.draft["all_versions"] == "yes",
                ),
                margin_top="1em",
            ),
            submit_button("Save tier", id="plan-save", margin_top="1em"),
            on_submit=PlansState.save,
            reset_on_submit=False,
            key=PlansState.form_key,
        ),
        width="100%",
    )


def _plan_row(p: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(p["name"], weight="bold"), rx.code(p["key"])),
        rx.table.cell(rx.cond(p["monthly"] != "", p["monthly"] + " " + p["currency"], "free")),
        rx.table.cell(p["annual"]),
        rx.table.cell(p["trial_days"]),
        rx.table.cell(rx.cond(p["included_tokens"] != "", p["included_tokens"], "unlimited")),
        rx.table.cell(rx.cond(p["rpm"] != "", p["rpm"], "unlimited")),
        rx.table.cell(rx.cond(p["all_versions"] == "yes", "all versions", "live only")),
        rx.table.cell(p["overage"]),
        rx.table.cell(p["subscribers"]),
        rx.table.cell(
            rx.cond(
                p["archived"] == "yes",
                rx.badge("archived", color_scheme="gray"),
                rx.badge(p["sync"], color_scheme=rx.cond(p["synced"] == "yes", "green", "orange")),
            ),
            class_name="plan-sync",
        ),
        rx.table.cell(
            rx.hstack(
                rx.button(
                    "Edit",
                    size="1",
                    variant="soft",
                    on_click=PlansState.edit(p["id"]),
                    class_name="plan-edit",
                ),
                rx.cond(
                    p["archived"] == "yes",
                    rx.button(
                        "Restore",
                        size="1",
                        variant="soft",
                        on_click=PlansState.restore(p["id"]),
                        class_name="plan-restore",
                    ),
                    rx.button(
                        "Archive",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=PlansState.archive(p["id"]),
                        class_name="plan-archive",
                    ),
                ),
            )
        ),
        class_name="plan-row",
        id="plan-row-" + p["key"],
    )


def _plans_table() -> rx.Component:
    headers = ("Tier", "Monthly", "Annual", "Trial", "Tokens", "RPM", "Models", "Overage/1k",
               "Subscribers", "Stripe", "")  # fmt: skip
    return rx.card(
        rx.heading("Tiers", size="4"),
        rx.cond(
            PlansState.plans.length() > 0,
            data_table(PlansState.plans, _plan_row, headers=headers),
            rx.text(
                "No tiers yet: the assistant is open to every signed-in user. Add a free tier "
                "and paid tiers to sell it.",
                color_scheme="gray",
                id="no-plans",
            ),
        ),
        width="100%",
    )


@add_page(route="/assistant/plans", title="Plans · GPT Studio", on_load=PlansState.load)
def plans_page() -> rx.Component:
    return page(
        assistant_header(),
        rx.hstack(
            rx.link("Pricing page", href="/pricing?assistant=" + PlansState.assistant_id.to(str)),
            spacing="4",
        ),
        rx.cond(
            ~PlansState.stripe_enabled,
            rx.callout(
                NOT_CONFIGURED_FOR_OPERATORS, icon="info", color_scheme="amber", id="no-stripe"
            ),
        ),
        form_error(PlansState.error),
        _plans_table(),
        _editor(),
        max_width="1200px",
    )

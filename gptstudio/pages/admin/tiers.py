"""The admin's tiers page (``/admin/tiers``): the installation's own tiers for creators (price,
included training GPU-hours a month and the overage price, storage, assistants, concurrent jobs,
queue priority), each mirrored to Stripe when it is paid."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.components.tables import data_table
from gptstudio.errors import InvalidInput
from gptstudio.models import Role, Tier
from gptstudio.pages.admin.header import admin_header
from gptstudio.pages.plans import _cents, _count
from gptstudio.pages.registry import add_page
from gptstudio.pages.studio_tier import tier_card
from gptstudio.services import creator_tier
from gptstudio.services.creator_tier import TierInput
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error

KEYS = [tier.value for tier in Tier]


def _hours(text: str) -> float | None:
    text = text.strip().replace(",", "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput("Included GPU-hours must be a number such as 10 or 0.5.") from None
    if not math.isfinite(value):
        raise InvalidInput("Included GPU-hours must be a number such as 10 or 0.5.")
    return value


class AdminTiersState(AuthState):
    tiers: list[dict[str, str]] = []
    error: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard(Role.admin)
        if refused is not None:
            return refused
        self._refresh()
        return None

    def _refresh(self) -> None:
        rows = []
        for t in creator_tier.list_tiers(include_archived=True):
            synced = t.monthly_price_cents == 0 or bool(t.stripe_monthly_price_id)
            rows.append(
                tier_card(t) | {"sync": "Synced to Stripe" if synced else "Not synced: save again"}
            )
        self.tiers = rows

    @rx.event
    @shows_error
    async def save(self, form: dict[str, Any]) -> Any:
        self.error = ""
        text = {k: str(v) for k, v in form.items()}
        try:
            data = TierInput(
                key=text.get("key", "") or "free",
                name=text.get("name", ""),
                monthly_price_cents=_cents(text.get("monthly", ""), "The monthly price"),
                included_gpu_hours=_hours(text.get("gpu_hours", "")),
                overage_cents_per_gpu_hour=_cents(text.get("overage", ""), "The overage price"),
                storage_mb=_count(text.get("storage_mb", ""), "Storage"),
                max_assistants=_count(text.get("assistants", ""), "Assistants"),
                max_concurrent_jobs=_count(text.get("jobs", ""), "Concurrent jobs"),
                queue_priority=_count(text.get("priority", ""), "Queue priority") or 0,
            )
            saved = await asyncio.to_thread(  # a paid tier syncs to Stripe: off the event loop
                creator_tier.save_tier, actor=self._actor(), data=data
            )
        finally:
            self._refresh()
        return rx.toast.success(f"Tier {saved.name} saved.")


def _field(label: str, name: str, placeholder: str = "") -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2"),
        rx.input(name=name, id=f"tier-{name}", placeholder=placeholder),
        spacing="1",
    )


def _editor() -> rx.Component:
    return rx.card(
        rx.heading("Define a tier", size="4"),
        rx.text(
            "Saving a tier that exists changes it (a new price becomes a new Stripe Price; "
            "creators already on it keep theirs until they change tier). Empty limits are "
            "unlimited.",
            size="2",
            color_scheme="gray",
        ),
        rx.form(
            rx.grid(
                rx.vstack(
                    rx.text("Tier", size="2"),
                    rx.select(KEYS, name="key", default_value="free", id="tier-key"),
                    spacing="1",
                ),
                _field("Name", "name", "Professional"),
                _field("Monthly price", "monthly", "49"),
                _field("Included GPU-hours / month", "gpu_hours", "10"),
                _field("Overage per GPU-hour", "overage", "1.20"),
                _field("Storage (MB)", "storage_mb", "2048"),
                _field("Assistants", "assistants", "5"),
                _field("Concurrent jobs", "jobs", "2"),
                _field("Queue priority", "priority", "20"),
                columns="3",
                spacing="3",
                width="100%",
            ),
            submit_button("Save tier", id="tier-save", margin_top="1em"),
            on_submit=AdminTiersState.save,
            reset_on_submit=False,
        ),
        width="100%",
    )


def _row(t: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(t["key"]),
        rx.table.cell(t["name"]),
        rx.table.cell(t["price"]),
        rx.table.cell(t["features"]),
        rx.table.cell(t["sync"], class_name="tier-sync"),
        id="tier-row-" + t["key"],
    )


@add_page(route="/admin/tiers", title="Tiers · GPT Studio", on_load=AdminTiersState.load)
def admin_tiers() -> rx.Component:
    return page(
        *admin_header("/admin/tiers"),
        form_error(AdminTiersState.error),
        _editor(),
        data_table(
            AdminTiersState.tiers,
            _row,
            headers=("Key", "Name", "Price", "Includes", "Stripe"),
        ),
    )

"""The payouts card of the creator's revenue page: set up payouts (Stripe Connect Express
onboarding through an Account Link), then the account's state, balance (available and pending),
latest payouts and the platform's application fees. It loads itself when it mounts and reads the
account from Stripe each time (back from onboarding: ``?connect=return``)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import reflex as rx

from gptstudio.components.tables import data_table
from gptstudio.errors import DomainError
from gptstudio.money import format_money
from gptstudio.services import connect
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error


def _money(amounts: dict[str, int]) -> str:
    return ", ".join(format_money(c, cur) for cur, c in sorted(amounts.items())) or "0.00"


class PayoutsState(AuthState):
    enabled: bool = False
    account_id: str = ""
    state: str = ""
    charges_enabled: bool = False
    available: str = ""
    pending: str = ""
    fees: str = ""
    gross: str = ""
    fee_percent: str = ""
    payouts: list[dict[str, str]] = []
    error: str = ""

    @rx.event
    async def load(self) -> None:
        self.error = ""
        try:
            # Back from onboarding, or onboarding left unfinished: Stripe has the state.
            await asyncio.to_thread(connect.refresh_account, actor=self._actor())
            view = await asyncio.to_thread(connect.summary, actor=self._actor())
        except DomainError as error:
            self.error = str(error)
            return
        self.enabled, self.account_id = view.enabled, view.account_id
        self.charges_enabled = view.charges_enabled
        self.state = (
            "Payouts active"
            if view.charges_enabled and view.payouts_enabled
            else "Onboarding not finished"
            if view.account_id
            else "Not set up"
        )
        self.available, self.pending = _money(view.available), _money(view.pending)
        self.fees, self.gross = _money(view.fees), _money(view.gross)
        self.fee_percent = f"{view.fee_percent:g} %"
        self.payouts = [
            {
                "id": p.id,
                "amount": format_money(p.amount_cents, p.currency),
                "status": p.status,
                "arrival": datetime.fromtimestamp(p.arrival_date, UTC).strftime("%Y-%m-%d"),
            }
            for p in view.payouts
        ]

    @rx.event
    @shows_error
    async def onboard(self) -> Any:
        self.error = ""
        url = await asyncio.to_thread(connect.onboarding_url, actor=self._actor())
        return rx.call_script(f"window.location.assign({json.dumps(url)})")


def _payout_row(p: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(p["arrival"]),
        rx.table.cell(p["amount"]),
        rx.table.cell(p["status"]),
        class_name="payout-row",
    )


def payouts_card() -> rx.Component:
    """Shown to creators where Stripe is configured (the operator's own assistants need none)."""
    s = PayoutsState
    return rx.box(
        rx.cond(
            s.enabled,
            rx.card(
                rx.hstack(
                    rx.heading("Payouts", size="4"),
                    rx.badge(s.state, id="connect-state"),
                    rx.spacer(),
                    rx.button(
                        rx.cond(s.account_id == "", "Set up payouts", "Continue onboarding"),
                        on_click=s.onboard,
                        display=rx.cond(s.charges_enabled, "none", "inline-flex"),
                        id="connect-onboard",
                    ),
                    width="100%",
                    align="center",
                ),
                rx.cond(
                    s.error != "",
                    rx.callout(s.error, icon="triangle_alert", color_scheme="red"),
                ),
                rx.text(
                    "Subscriptions to your assistants are paid into your own Stripe account; "
                    "the platform keeps ",
                    s.fee_percent,
                    " as its fee.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.hstack(
                    rx.text("Available: ", rx.text.strong(s.available, id="balance-available")),
                    rx.text("Pending: ", rx.text.strong(s.pending, id="balance-pending")),
                    rx.text("Paid by subscribers: ", rx.text.strong(s.gross, id="connect-gross")),
                    rx.text("Platform fees: ", rx.text.strong(s.fees, id="connect-fees")),
                    spacing="5",
                    wrap="wrap",
                    margin_top="0.5em",
                ),
                rx.cond(
                    s.payouts.length() > 0,
                    data_table(s.payouts, _payout_row, headers=("Arrives", "Amount", "Status")),
                    rx.text("No payouts yet.", size="2", id="no-payouts"),
                ),
                width="100%",
            ),
        ),
        on_mount=PayoutsState.load,
        width="100%",
    )

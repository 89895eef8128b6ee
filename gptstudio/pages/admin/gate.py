"""The publishing gate's card on the admin page: the held-out gain a new version needs before it
is published without a written reason (:mod:`gptstudio.services.publish_gate`)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.services import publish_gate
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error


class GateState(AuthState):
    margin_percent: str = ""
    error: str = ""

    @rx.event
    def load(self) -> None:
        self.margin_percent = f"{publish_gate.gate_margin() * 100:g}"

    @rx.event
    @shows_error
    def save(self, form: dict[str, Any]) -> Any:
        self.error = ""
        text = str(form.get("margin", "")).strip().rstrip("%").strip()
        try:
            margin = float(text) / 100 if text else None
        except ValueError:
            self.error = f"Write the margin as a percentage, e.g. 5 (not {text!r})."
            return None
        now = publish_gate.set_gate_margin(
            actor=self._actor(), margin=margin, client=self._client()
        )
        self.margin_percent = f"{now * 100:g}"
        return rx.toast.success(f"New versions now need {now:.0%} lower held-out perplexity.")


def gate_card() -> rx.Component:
    return rx.card(
        rx.heading("Publishing gate", size="4"),
        rx.text(
            "A new version is published without a written reason only when its held-out "
            "perplexity is at least this much lower than the base model's. Empty: the "
            "installation's setting (GPTSTUDIO_GATE_MARGIN).",
            size="2",
            color_scheme="gray",
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="margin",
                    id="gate-margin",
                    default_value=GateState.margin_percent,
                    key=GateState.margin_percent,
                    width="6em",
                ),
                rx.text("%"),
                submit_button("Save", id="gate-save"),
                align="center",
            ),
            on_submit=GateState.save,
        ),
        rx.cond(
            GateState.error != "", rx.callout(GateState.error, color_scheme="red", id="gate-error")
        ),
        on_mount=GateState.load,
        width="100%",
    )

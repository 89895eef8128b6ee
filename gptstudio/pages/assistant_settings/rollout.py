"""The rollout card: the current version, an A/B split with a candidate (its share of new
conversations), promote and one-click rollback, then feedback and latency per version.
:class:`RolloutState` holds the split being set up and the handlers."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.components.tables import data_table
from gptstudio.pages.assistant_settings.state import SettingsState
from gptstudio.services import rollout
from gptstudio.state.errors import shows_error


class RolloutState(SettingsState):
    split_percent: int = 10

    @rx.event
    def choose(self, value: str) -> None:
        self.chosen = value

    @rx.event
    def set_split_percent(self, value: list[int | float]) -> None:
        self.split_percent = int(value[0]) if value else 0

    @rx.event
    @shows_error
    def start_split(self, form: dict[str, Any]) -> Any:
        self.error = ""
        if not self.chosen:
            self.error = "Choose a candidate version first."
            return None
        rollout.set_split(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            candidate_version_id=int(self.chosen),
            percent=self.split_percent,
            override_reason=str(form.get("reason", "")),
            client=self._client(),
        )
        self._refresh_rollout()
        return rx.toast.success(
            f"{self.candidate_label} now gets {self.candidate_percent} % of new conversations."
        )

    @rx.event
    @shows_error
    def promote(self) -> Any:
        self.error = ""
        rollout.promote(actor=self._actor(), assistant_id=self.assistant_id, client=self._client())
        self._refresh_rollout()
        return rx.toast.success(f"{self.current_label} now answers every new conversation.")

    @rx.event
    @shows_error
    def roll_back(self) -> Any:
        self.error = ""
        rollout.rollback(actor=self._actor(), assistant_id=self.assistant_id, client=self._client())
        self._refresh_rollout()
        return rx.toast.success(f"Rolled back: {self.current_label} answers new conversations.")


def _stats_table() -> rx.Component:
    headers = (
        "Version", "Role", "Status", "Conversations", "Answers", "👍", "👎", "👎 rate", "p50",
        "p95",
    )  # fmt: skip
    keys = (
        "version", "role", "status", "conversations", "answers", "up", "down", "down_rate",
        "p50", "p95",
    )  # fmt: skip
    return rx.box(
        rx.cond(
            SettingsState.ab_summary != "",
            rx.callout(SettingsState.ab_summary, icon="info", size="1", id="ab-summary"),
        ),
        data_table(
            SettingsState.stats,
            lambda s: rx.table.row(*[rx.table.cell(s[k]) for k in keys], class_name="stats-row"),
            headers=headers,
            size="1",
        ),
        overflow_x="auto",
        width="100%",
    )


def _charts() -> rx.Component:
    return rx.grid(
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="up", fill="#30a46c", name="thumbs up"),
            rx.recharts.bar(data_key="down", fill="#e5484d", name="thumbs down"),
            rx.recharts.x_axis(data_key="version"),
            rx.recharts.y_axis(allow_decimals=False),
            rx.recharts.legend(),
            rx.recharts.graphing_tooltip(),
            data=SettingsState.chart,
            width="100%",
            height=200,
            id="feedback-chart",
        ),
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="p50", fill="#3e63dd", name="p50 ms"),
            rx.recharts.bar(data_key="p95", fill="#8e4ec6", name="p95 ms"),
            rx.recharts.x_axis(data_key="version"),
            rx.recharts.y_axis(),
            rx.recharts.legend(),
            rx.recharts.graphing_tooltip(),
            data=SettingsState.chart,
            width="100%",
            height=200,
            id="latency-chart",
        ),
        columns=rx.breakpoints(initial="1", md="2"),
        spacing="4",
        width="100%",
    )


def rollout_card() -> rx.Component:
    return rx.card(
        rx.heading("Versions and rollout", size="4"),
        rx.flex(
            rx.text("Current: ", rx.badge(SettingsState.current_label, id="current-version")),
            rx.cond(
                SettingsState.splitting,
                rx.text(
                    "Candidate: ",
                    rx.badge(SettingsState.candidate_label, color_scheme="orange"),
                    " gets ",
                    SettingsState.candidate_percent.to_string(),
                    " % of new conversations",
                    id="split-status",
                ),
                rx.text("No split running.", color_scheme="gray", id="split-status"),
            ),
            rx.cond(
                SettingsState.previous_label != "",
                rx.text("Previous: ", rx.badge(SettingsState.previous_label, variant="soft")),
            ),
            gap="4",
            wrap="wrap",
            align="center",
        ),
        rx.form(
            rx.flex(
                rx.select.root(
                    rx.select.trigger(placeholder="candidate version", id="split-version"),
                    rx.select.content(
                        rx.foreach(
                            SettingsState.choices,
                            lambda c: rx.select.item(c["label"], value=c["id"]),
                        )
                    ),
                    value=SettingsState.chosen,
                    on_change=RolloutState.choose,
                ),
                rx.hstack(
                    rx.slider(
                        default_value=[RolloutState.split_percent],
                        on_value_commit=RolloutState.set_split_percent,
                        min=0,
                        max=100,
                        step=5,
                        width="10em",
                        name="percent",
                        id="split-slider",
                    ),
                    rx.text(
                        RolloutState.split_percent.to_string(), " %", size="2", id="split-percent"
                    ),
                    align="center",
                ),
                rx.input(
                    name="reason",
                    placeholder="Reason, if it did not pass the gate",
                    width="18em",
                    id="split-reason",
                ),
                submit_button("Start split", id="split-start"),
                gap="3",
                wrap="wrap",
                align="center",
            ),
            on_submit=RolloutState.start_split,
            margin_y="0.75em",
        ),
        rx.hstack(
            rx.button(
                "Promote candidate",
                on_click=RolloutState.promote,
                disabled=SettingsState.candidate_label == "",
                id="promote",
            ),
            rx.button(
                "Roll back",
                on_click=RolloutState.roll_back,
                color_scheme="red",
                variant="soft",
                disabled=~SettingsState.splitting & (SettingsState.previous_label == ""),
                id="rollback",
            ),
            spacing="3",
        ),
        rx.heading("Per version", size="3", margin_top="1em"),
        _stats_table(),
        rx.cond(SettingsState.chart.length() > 0, _charts()),
        width="100%",
    )

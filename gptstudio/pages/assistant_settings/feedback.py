"""The feedback card: the subscribers' latest rated answers (thumb, version, question, answer
and comment), loaded with the rollout by :class:`SettingsState`."""

from __future__ import annotations

import reflex as rx

from gptstudio.pages.assistant_settings.state import SettingsState


def feedback_card() -> rx.Component:
    return rx.card(
        rx.heading("Recent feedback", size="4"),
        rx.cond(
            SettingsState.rated.length() == 0,
            rx.text("No rated answers yet.", size="2", color_scheme="gray"),
        ),
        rx.foreach(
            SettingsState.rated,
            lambda r: rx.box(
                rx.hstack(
                    rx.badge(
                        rx.cond(r["value"] == "up", "👍", "👎"),
                        color_scheme=rx.cond(r["value"] == "up", "green", "red"),
                    ),
                    rx.badge(r["version"], variant="soft"),
                    rx.text(r["when"], size="1", color_scheme="gray"),
                    align="center",
                ),
                rx.text("Q: ", r["question"], size="2", weight="medium"),
                rx.text("A: ", r["answer"], size="2", color_scheme="gray", trim="both"),
                rx.cond(r["comment"] != "", rx.blockquote(r["comment"], size="2")),
                class_name="feedback-row",
                padding_y="0.5em",
                border_bottom="1px solid var(--gray-4)",
                width="100%",
            ),
        ),
        width="100%",
    )

"""The preview card: chat with any model version (a draft before publishing, or another) and the
base model side by side, one question for both. :class:`PreviewState` asks the engine through
:mod:`gptstudio.services.preview` in the background (nothing is metered) and keeps the turns."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.errors import DomainError, InvalidInput
from gptstudio.pages.training.state import EMPTY_ANSWER, TrainingState
from gptstudio.services import preview

THINKING = "…"


def preview_question(form: Any) -> str:
    """The question typed in the preview form; anything else is a message."""
    text = str(form.get("question", "") or "").strip() if isinstance(form, dict) else ""
    if not text:
        raise InvalidInput("Type a question to preview.")
    return text


def _column(answer: preview.Answer) -> str:
    if answer.error:
        return f"(no answer: {answer.error})"
    return answer.text.strip() or EMPTY_ANSWER


class PreviewState(TrainingState):
    preview_version: str = ""  # a version number; the newest until the creator picks another
    preview_turns: list[dict[str, str]] = []  # question, tuned, base
    preview_busy: bool = False
    preview_error: str = ""

    @rx.event
    def choose_preview(self, value: Any) -> None:
        """Another version starts a new preview conversation."""
        self.preview_version, self.preview_turns, self.preview_error = str(value or ""), [], ""

    @rx.event
    def clear_preview(self) -> None:
        self.preview_turns, self.preview_error = [], ""

    def _preview_version_id(self) -> int:
        number = self.preview_version or (self.versions[0]["version"] if self.versions else "")
        found = next((v["id"] for v in self.versions if v["version"] == number), None)
        if found is None:
            raise InvalidInput(
                "Train a model version first: the preview compares it with the base."
            )
        self.preview_version = number
        return int(found)

    @rx.event(background=True)
    async def ask_preview(self, form: Any) -> None:
        async with self:
            if self.preview_busy:
                return
            try:
                question, version_id = preview_question(form), self._preview_version_id()
            except DomainError as error:
                self.preview_error = str(error)
                return
            actor, earlier = self._actor(), list(self.preview_turns)
            self.preview_busy, self.preview_error = True, ""
            self.preview_turns = [
                *earlier,
                {"question": question, "tuned": THINKING, "base": THINKING},
            ]
        try:
            tuned, base = await preview.side_by_side(
                actor=actor, version_id=version_id, turns=earlier, question=question
            )
        except DomainError as error:
            async with self:
                self.preview_turns, self.preview_error = earlier, str(error)
                self.preview_busy = False
            return
        async with self:
            turn = {"question": question, "tuned": _column(tuned), "base": _column(base)}
            self.preview_turns = [*earlier, turn]
            self.preview_busy = False


def _turn_view(turn: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.vstack(
        rx.text(turn["question"], weight="bold", size="2"),
        rx.grid(
            rx.card(rx.text(turn["tuned"], size="2", white_space="pre-wrap"), class_name="tuned"),
            rx.card(rx.text(turn["base"], size="2", white_space="pre-wrap"), class_name="base"),
            columns="2",
            spacing="3",
            width="100%",
        ),
        width="100%",
        class_name="preview-turn",
    )


def preview_card() -> rx.Component:
    s = PreviewState
    return rx.card(
        rx.hstack(
            rx.heading("Preview", size="4"),
            rx.text(
                "Ask a version and the base model the same question before publishing. Not "
                "metered, not shown to subscribers.",
                size="1",
                color_scheme="gray",
            ),
            align="center",
            spacing="3",
        ),
        rx.hstack(
            rx.text("Version", size="2"),
            rx.select(
                TrainingState.versions.map(lambda v: v["version"]),
                value=rx.cond(s.preview_version != "", s.preview_version, s.publish_choice),
                on_change=s.choose_preview,
                id="preview-version",
            ),
            rx.spacer(),
            rx.button("Clear", size="1", variant="soft", on_click=s.clear_preview),
            width="100%",
            align="center",
        ),
        rx.grid(
            rx.text("Tuned version", size="1", color_scheme="gray"),
            rx.text("Base model", size="1", color_scheme="gray"),
            columns="2",
            spacing="3",
            width="100%",
        ),
        rx.vstack(s.preview_turns.map(_turn_view), width="100%", id="preview-turns"),
        rx.cond(
            s.preview_error != "",
            rx.callout(s.preview_error, color_scheme="red", id="preview-error"),
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="question",
                    placeholder="Ask both models…",
                    width="100%",
                    id="preview-input",
                ),
                submit_button("Ask", id="preview-ask", disabled=s.preview_busy),
                width="100%",
            ),
            on_submit=s.ask_preview,
            reset_on_submit=True,
        ),
        width="100%",
        id="preview-card",
    )

"""Feedback on an answer: thumbs up or down and an optional comment, with their substate."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.pages.chat.state import Bubble, ChatState
from gptstudio.services import feedback


class FeedbackState(ChatState):
    """Rating answers; the rating shows on the message's bubble."""

    def _rated(self, message_id: int, value: int, comment: str) -> None:
        saved = feedback.set_feedback(
            actor=self._actor(), message_id=message_id, value=value, comment=comment
        )
        self.messages = [
            Bubble(**{**b.__dict__, "feedback": saved.feedback, "comment": saved.feedback_comment})
            if b.id == message_id
            else b
            for b in self.messages
        ]

    @rx.event
    def rate(self, message_id: int, value: int) -> Any:
        """Thumbs up or down; the same thumb again takes the rating back."""
        current = next((b for b in self.messages if b.id == message_id), None)
        if current is None:
            return rx.toast.error("Wait for the answer to finish before rating it.")
        chosen = 0 if current.feedback == value else value
        self._rated(message_id, chosen, current.comment)
        return None

    @rx.event
    def comment(self, form: dict[str, Any]) -> Any:
        try:
            message_id = int(str(form.get("message_id", "0")))
        except ValueError:
            message_id = 0
        current = next((b for b in self.messages if b.id == message_id), None)
        if current is None or current.feedback == 0:
            return rx.toast.error("Choose thumbs up or down first, then add a comment.")
        self._rated(message_id, current.feedback, str(form.get("comment", "")))
        return rx.toast.success("Thanks: the creator sees your feedback.")


def comment_form(message: rx.Var[Bubble]) -> rx.Component:
    """An optional comment on a rated answer, folded away until asked for."""
    return rx.el.details(
        rx.el.summary(
            rx.cond(message.comment != "", "Edit comment", "Add a comment"),
            cursor="pointer",
            font_size="0.8em",
            color="var(--gray-11)",
            class_name="feedback-comment",
        ),
        rx.form(
            rx.vstack(
                rx.el.input(type="hidden", name="message_id", value=message.id),
                rx.text_area(
                    name="comment",
                    default_value=message.comment,
                    placeholder="What was good or wrong?",
                    max_length=2000,
                    width="100%",
                    class_name="feedback-text",
                ),
                rx.button("Save comment", type="submit", size="1", class_name="feedback-save"),
                align="end",
                width="100%",
            ),
            on_submit=FeedbackState.comment,
            width="100%",
        ),
        width="100%",
    )


def feedback_bar(message: rx.Var[Bubble]) -> rx.Component:
    return rx.hstack(
        rx.icon_button(
            rx.icon("thumbs-up", size=14),
            size="1",
            variant=rx.cond(message.feedback == 1, "solid", "ghost"),
            color_scheme="green",
            on_click=FeedbackState.rate(message.id, 1),
            class_name="thumbs-up",
            aria_label="Good answer",
        ),
        rx.icon_button(
            rx.icon("thumbs-down", size=14),
            size="1",
            variant=rx.cond(message.feedback == -1, "solid", "ghost"),
            color_scheme="red",
            on_click=FeedbackState.rate(message.id, -1),
            class_name="thumbs-down",
            aria_label="Bad answer",
        ),
        rx.cond(
            message.latency != "",
            rx.text(message.latency, size="1", color_scheme="gray", class_name="latency"),
        ),
        spacing="2",
        align="center",
    )

"""The feedback card: answers subscribers rated down (with their comment) and questions the
assistant left unanswered, each to correct and accept (it enters the next dataset version, "from
feedback") or dismiss; **Train with feedback** snapshots that version and starts a fine-tune.
:class:`FeedbackState` holds the items shown and the filter."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.pages.data.state import DataState
from gptstudio.services import feedback, feedback_training
from gptstudio.state.errors import shows_error

FILTERS = ["open", "accepted", "dismissed", "all"]
KIND_LABELS = {feedback.THUMBS_DOWN: "👎 rated down", feedback.UNANSWERED: "unanswered"}


class FeedbackState(DataState):
    items: list[dict[str, str]] = []
    show: str = "open"
    waiting: int = 0  # accepted corrections no dataset version has taken yet

    def _load_items(self) -> None:
        actor, assistant_id = self._actor(), self.assistant_id
        rows = feedback.review_items(actor=actor, assistant_id=assistant_id, status=self.show)
        self.items = [
            {
                "id": str(i.id),
                "kind": KIND_LABELS.get(i.kind, i.kind),
                "status": i.status,
                "question": i.question,
                "answer": i.answer or "(no answer: it failed)",
                "comment": i.comment,
                "correction": i.correction or i.answer,
                "version": f"v{i.version}" if i.version else "—",
                "dataset": f"in dataset v{i.dataset_version}" if i.dataset_version else "",
                "when": f"{i.created_at:%Y-%m-%d %H:%M}",
            }
            for i in rows
        ]
        accepted = feedback.review_items(actor=actor, assistant_id=assistant_id, status="accepted")
        self.waiting = sum(1 for i in accepted if i.dataset_version is None)

    @rx.event
    @shows_error
    def opened(self) -> None:
        self.show = "open"
        if self.assistant_id:
            self._load_items()

    @rx.event
    @shows_error
    def filter_changed(self, value: str) -> None:
        self.show = value if value in FILTERS else "open"
        self._load_items()

    @rx.event
    @shows_error
    def accept(self, form: dict[str, Any]) -> Any:
        feedback.accept(
            actor=self._actor(),
            item_id=int(form.get("item") or 0),
            correction=str(form.get("correction", "")),
        )
        self._load_items()
        return rx.toast.success("Accepted: it enters the next dataset version.")

    @rx.event
    @shows_error
    def dismiss(self, item_id: str) -> None:
        feedback.dismiss(actor=self._actor(), item_id=int(item_id))
        self._load_items()

    @rx.event
    @shows_error
    def reopen(self, item_id: str) -> None:
        feedback.reopen(actor=self._actor(), item_id=int(item_id))
        self._load_items()

    @rx.event
    @shows_error
    def train(self) -> Any:
        job = feedback_training.train_with_feedback(
            actor=self._actor(), assistant_id=self.assistant_id
        )
        self._refresh()
        self._load_items()
        return [
            rx.toast.success(f"Training job {job.id} started on the new dataset version."),
            rx.redirect(f"/assistant/training?id={self.assistant_id}"),
        ]


def _decision(item: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.cond(
        item["status"] == "open",
        rx.form(
            rx.vstack(
                rx.el.input(type="hidden", name="item", value=item["id"]),
                rx.text_area(
                    name="correction", default_value=item["correction"], rows="3", width="100%",
                    placeholder="The answer it should have given",
                    aria_label="Corrected answer", class_name="feedback-correction",
                ),  # fmt: skip
                rx.hstack(
                    submit_button("Accept", size="1", class_name="feedback-accept"),
                    rx.button(
                        "Dismiss", type="button", size="1", variant="soft", color_scheme="gray",
                        on_click=FeedbackState.dismiss(item["id"]),
                        class_name="feedback-dismiss",
                    ),  # fmt: skip
                ),
                width="100%",
            ),
            on_submit=FeedbackState.accept,
            reset_on_submit=False,
            width="100%",
        ),
        rx.vstack(
            rx.hstack(
                rx.badge(item["status"]),
                rx.text(item["dataset"], size="1", color_scheme="gray"),
                rx.cond(
                    item["dataset"] == "",
                    rx.button(
                        "Reopen", size="1", variant="ghost",
                        on_click=FeedbackState.reopen(item["id"]),
                    ),  # fmt: skip
                ),
            ),
            rx.cond(item["status"] == "accepted", rx.text(item["correction"], size="2")),
        ),
    )


def _item_row(item: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.text(item["kind"], size="1"),
            rx.text(item["version"], " · ", item["when"], size="1", color_scheme="gray"),
        ),
        rx.table.cell(
            rx.text(item["question"], weight="medium", size="2"),
            rx.text(item["answer"], size="2", color_scheme="gray"),
            rx.cond(
                item["comment"] != "",
                rx.text("“", item["comment"], "”", size="2", color_scheme="red"),
            ),
            max_width="380px",
        ),
        rx.table.cell(_decision(item), min_width="320px"),
        class_name="review-row",
    )


def feedback_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Feedback to review", size="4"),
                rx.spacer(),
                rx.select(
                    FILTERS, value=FeedbackState.show, on_change=FeedbackState.filter_changed,
                    size="1", id="feedback-filter",
                ),  # fmt: skip
                rx.button(
                    "Train with feedback", on_click=FeedbackState.train,
                    disabled=FeedbackState.waiting == 0, id="train-with-feedback",
                ),  # fmt: skip
                align="center",
                width="100%",
            ),
            rx.text(
                "Answers subscribers rated down and questions left unanswered (personal data "
                "replaced). Accept a corrected answer and it becomes a training example of the "
                "next dataset version, marked “from feedback”. Accepted and waiting: ",
                FeedbackState.waiting,
                ".",
                size="2",
            ),
            rx.cond(
                FeedbackState.items.length() > 0,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("What"),
                            rx.table.column_header_cell("Question and answer"),
                            rx.table.column_header_cell("Correction"),
                        )
                    ),
                    rx.table.body(rx.foreach(FeedbackState.items, _item_row)),
                    width="100%",
                ),
                rx.text("Nothing here.", size="2", color_scheme="gray", id="feedback-empty"),
            ),
            width="100%",
        ),
        id="feedback-card",
        width="100%",
    )

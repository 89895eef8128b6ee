"""Reviewing the latest curation run: the duplicate clusters (keep another member) and the
examples, a page at a time (edit in a dialog, drop, undo). :class:`ReviewState` holds the
example being edited; every decision is stored as an override that the next run applies."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.components.tables import data_table
from gptstudio.pages.data.state import PAGE_SIZE, DataState
from gptstudio.services import dataset
from gptstudio.state.errors import shows_error


class ReviewState(DataState):
    editing: str = ""
    edit_question: str = ""
    edit_answer: str = ""

    def _override(self, example_id: str, action: str, messages: Any = None) -> None:
        dataset.set_override(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            example_id=example_id,
            action=action,
            messages=messages,
        )
        self._refresh()

    @rx.event
    def keep_member(self, member_id: str) -> Any:
        self._override(member_id, "keep")
        return rx.toast.info("Kept. Run the curation again to apply it.")

    @rx.event
    def drop_example(self, example_id: str) -> None:
        self._override(example_id, "drop")

    @rx.event
    def reset_example(self, example_id: str) -> None:
        self._override(example_id, "reset")

    @rx.event
    def start_edit(self, example_id: str) -> None:
        row = next(e for e in self.examples if e["id"] == example_id)
        self.editing, self.edit_question, self.edit_answer = (
            example_id,
            row["question"],
            row["answer"],
        )

    @rx.event
    def cancel_edit(self) -> None:
        self.editing = ""

    @rx.event
    def edit_open_changed(self, is_open: bool) -> None:
        """The dialog closed by Escape or a click outside it: nothing is saved."""
        if not is_open:
            self.editing = ""

    @rx.event
    @shows_error
    def save_edit(self, form: dict[str, Any]) -> None:
        messages = [
            {"role": "user", "content": str(form.get("question", "")).strip()},
            {"role": "assistant", "content": str(form.get("answer", "")).strip()},
        ]
        self._override(self.editing, "edit", messages)
        self.editing = ""

    @rx.event
    def page_examples(self, step: int) -> None:
        self.offset = max(0, min(self.offset + step * PAGE_SIZE, self.example_total - 1))
        self._refresh()


def _member_row(m: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(m["cluster"]),
        rx.table.cell(m["kind"]),
        rx.table.cell(rx.text(m["text"], size="1")),
        rx.table.cell(
            rx.cond(
                m["kept"] == "yes",
                rx.badge("kept", color_scheme="green"),
                rx.button(
                    "Keep this one",
                    size="1",
                    variant="soft",
                    on_click=ReviewState.keep_member(m["id"]),
                ),
            )
        ),
        class_name="duplicate-row",
    )


def duplicates_card() -> rx.Component:
    return rx.card(
        rx.heading("Duplicate clusters", size="4"),
        rx.text("Each cluster keeps one member; keep another instead if it is better.", size="2"),
        data_table(DataState.duplicates, _member_row),
        width="100%",
    )


def _example_actions(e: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.cond(
        e["state"] != "",
        rx.hstack(
            rx.badge(e["state"]),
            rx.button(
                "Undo", size="1", variant="ghost", on_click=ReviewState.reset_example(e["id"])
            ),
        ),
        rx.hstack(
            rx.button("Edit", size="1", variant="soft", on_click=ReviewState.start_edit(e["id"])),
            rx.button(
                "Drop",
                size="1",
                variant="soft",
                color_scheme="red",
                on_click=ReviewState.drop_example(e["id"]),
            ),
        ),
    )


def _example_view(e: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(e["split"])),
        rx.table.cell(
            rx.text(e["question"], weight="medium", size="2"), rx.text(e["answer"], size="2")
        ),
        rx.table.cell(
            rx.text(e["kind"], size="1"), rx.text(e["source"], size="1", color_scheme="gray")
        ),
        rx.table.cell(_example_actions(e)),
        class_name="example-row",
    )


def _edit_dialog() -> rx.Component:
    """The example being edited, in a dialog over the row clicked (wherever it is in the list)."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Edit the example"),
            rx.dialog.description(
                "The question and the answer as they will be trained on.", size="2"
            ),
            _edit_form(),
            id="edit-dialog",
        ),
        open=ReviewState.editing != "",
        on_open_change=ReviewState.edit_open_changed,
    )


def _edit_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.text("Question", size="1"),
            rx.text_area(
                name="question", default_value=ReviewState.edit_question, width="100%",
                id="edit-question",
            ),
            rx.text("Answer", size="1"),
            rx.text_area(
                name="answer", default_value=ReviewState.edit_answer, width="100%", rows="6",
                id="edit-answer",
            ),
            rx.hstack(
                submit_button("Save", id="save-edit"),
                rx.button(
                    "Cancel", type="button", variant="soft", on_click=ReviewState.cancel_edit
                ),
            ),
            width="100%",
        ),
        on_submit=ReviewState.save_edit,
    )


def examples_card() -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading("Examples", size="4"),
            rx.spacer(),
            rx.text(
                DataState.offset + 1,
                "–",
                DataState.offset + DataState.examples.length(),
                " of ",
                DataState.example_total,
                size="2",
            ),
            rx.button("Previous", size="1", variant="soft", on_click=ReviewState.page_examples(-1)),
            rx.button("Next", size="1", variant="soft", on_click=ReviewState.page_examples(1)),
            width="100%",
            align="center",
        ),
        data_table(DataState.examples, _example_view),
        _edit_dialog(),
        width="100%",
    )

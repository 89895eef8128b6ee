"""The dataset versions card: snapshot the latest curation result as a new version, export its
training split, and compare two versions. :class:`DatasetsState` holds the comparison shown."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.components.tables import data_table
from gptstudio.errors import DomainError
from gptstudio.pages.data.state import DataState
from gptstudio.services import dataset
from gptstudio.state.errors import shows_error


class DatasetsState(DataState):
    diff: str = ""

    @rx.event
    def opened(self) -> None:
        """A new visit to the page starts without a comparison."""
        self.diff = ""

    @rx.event
    @shows_error
    def take_snapshot(self) -> Any:
        created = dataset.snapshot(actor=self._actor(), assistant_id=self.assistant_id)
        self._refresh()
        saved = f"Dataset version {created.version} saved."
        if warnings := created.counts.get("warnings"):
            return rx.toast.warning(f"{saved} {' '.join(warnings)}", duration=20000)
        return rx.toast.success(saved)

    @rx.event
    def compare(self, form: dict[str, Any]) -> None:
        """The comparison's outcome, refusals included, is the line beside the form."""
        try:
            diff = dataset.diff_versions(
                actor=self._actor(),
                assistant_id=self.assistant_id,
                old_version=int(form.get("old") or 0),
                new_version=int(form.get("new") or 0),
            )
        except (ValueError, DomainError) as error:
            self.diff = str(error) if isinstance(error, DomainError) else "Pick two versions."
            return
        self.diff = (
            f"{len(diff['added'])} added, {len(diff['removed'])} removed, "
            f"{len(diff['changed'])} changed, {diff['unchanged']} unchanged."
        )


def _dataset_row(d: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell("v", d["version"]),
        rx.table.cell(rx.code(d["hash"])),
        rx.table.cell(d["train"]),
        rx.table.cell(d["validation"]),
        rx.table.cell(d["test"]),
        rx.table.cell(d["created"]),
        rx.table.cell(rx.text(d["warnings"], size="1", color="orange"), class_name="dataset-notes"),
        rx.table.cell(
            rx.el.a("train.jsonl", href="/api/datasets/" + d["id"] + "/train.jsonl", download=True)
        ),
        class_name="dataset-row",
    )


def _compare_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.text("Compare", size="2"),
            rx.select(DataState.versions, name="old", placeholder="old", id="diff-old"),
            rx.select(DataState.versions, name="new", placeholder="new", id="diff-new"),
            submit_button("Compare", size="1", id="compare"),
            rx.text(DatasetsState.diff, size="2", id="diff"),
            align="center",
        ),
        on_submit=DatasetsState.compare,
    )


def datasets_card() -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading("Dataset versions", size="4"),
            rx.spacer(),
            rx.button(
                "Snapshot dataset",
                on_click=DatasetsState.take_snapshot,
                id="snapshot",
                disabled=DataState.run_status != "done",
            ),
            width="100%",
        ),
        data_table(
            DataState.datasets,
            _dataset_row,
            headers=("Version", "Hash", "Train", "Validation", "Test", "Created", "Notes", "Export"),
        ),
        _compare_form(),
        width="100%",
    )

"""The model versions card (perplexity before and after, the knowledge-gain gate, QA scores;
samples, the export bundle with its progress, publish, with a reason to publish despite the
gate) and the base-vs-tuned answers of one version. :class:`VersionsState` holds the handlers."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.components.tables import data_table
from gptstudio.pages.training.jobs import js_number
from gptstudio.pages.training.state import TrainingState, whole_number
from gptstudio.services import bundle, training
from gptstudio.state.errors import shows_error, toasts_error


class VersionsState(TrainingState):
    @rx.event
    @toasts_error
    def show_samples(self, version_id: Any) -> None:
        self.sample_version = str(version_id or "")
        self._refresh()

    @rx.event
    @shows_error
    def publish(self, form: Any) -> Any:
        self.error = ""
        form = form if isinstance(form, dict) else {}
        number = str(form.get("version") or self.publish_choice)
        version_id = next((v["id"] for v in self.versions if v["version"] == number), None)
        if version_id is None:
            self.error = (
                "Choose a model version to publish."
                if self.versions
                else "There is no model version yet: train one first."
            )
            return None
        published = training.publish(
            actor=self._actor(),
            version_id=int(version_id),
            override_reason=str(form.get("reason", "") or ""),
            client=self._client(),
        )
        self._refresh()
        return rx.toast.success(f"Version {published.version} is live.")

    @rx.event
    @toasts_error
    def export(self, version_id: Any) -> Any:
        bundle.request_export(actor=self._actor(), version_id=whole_number(version_id, "version"))
        self._refresh()
        return [
            rx.toast.info(
                "Building the export bundle (adapter, merged model, GGUF, Modelfile, sources); "
                "its download appears here when done."
            ),
            TrainingState.watch,
        ]


def _export_view(v: rx.Var[dict[str, str]]) -> rx.Component:
    """The bundle's build progress, its error, or its download link."""
    return rx.fragment(
        rx.cond(
            v["export_state"] == "queued",
            rx.text("Export queued", size="1", class_name="export-progress"),
        ),
        rx.cond(
            v["export_state"] == "running",
            rx.vstack(
                rx.progress(value=js_number(v["export_percent"]), max=100, width="8em"),
                rx.text(
                    v["export_step"],
                    " (",
                    v["export_percent"],
                    " %)",
                    size="1",
                    color_scheme="gray",
                ),
                spacing="1",
                class_name="export-progress",
            ),
        ),
        rx.cond(
            v["export_state"] == "failed",
            rx.text(
                "Export failed: ",
                v["export_error"],
                size="1",
                color_scheme="red",
                class_name="export-error",
            ),
        ),
        rx.cond(
            v["export"] != "",
            rx.el.a(
                "Download bundle (",
                v["export_size"],
                ")",
                href=v["export"],
                download=True,
                class_name="export",
            ),
        ),
    )


def _version_view(v: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell("v", v["version"]),
        rx.table.cell(rx.badge(v["status"])),
        rx.table.cell(v["base_ppl"]),
        rx.table.cell(
            v["tuned_ppl"],
            rx.cond(v["scored"] != "", rx.text(v["scored"], size="1", color_scheme="gray")),
        ),
        rx.table.cell(v["gain"]),
        rx.table.cell(
            rx.badge(v["passed"], color_scheme=rx.cond(v["passed"] == "yes", "green", "red")),
            rx.text(v["message"], size="1", color_scheme="gray", max_width="22em"),
            rx.text(
                v["held_out"],
                size="1",
                color_scheme="gray",
                max_width="22em",
                class_name="held-out",
            ),
        ),
        rx.table.cell(rx.text(v["qa"], size="1")),
        rx.table.cell(
            rx.hstack(
                rx.button(
                    "Samples",
                    size="1",
                    variant="soft",
                    on_click=VersionsState.show_samples(v["id"]),
                ),
                rx.button(
                    "Export", size="1", variant="soft", on_click=VersionsState.export(v["id"])
                ),
                _export_view(v),
            )
        ),
        class_name="version-row",
    )


def versions_card() -> rx.Component:
    return rx.card(
        rx.heading("Model versions", size="4"),
        data_table(
            TrainingState.versions,
            _version_view,
            headers=("Version", "Status", "Base ppl", "Tuned ppl", "Gain", "Gate", "QA", ""),
        ),
        rx.form(
            rx.hstack(
                rx.select(
                    TrainingState.versions.map(lambda v: v["version"]),
                    name="version",
                    placeholder="version",
                    id="publish-version",
                    value=TrainingState.publish_choice,
                    on_change=TrainingState.choose_version,
                ),
                rx.input(
                    name="reason",
                    placeholder="Reason to publish despite the gate (optional)",
                    width="24em",
                    id="publish-reason",
                ),
                submit_button("Publish", id="publish"),
                align="center",
            ),
            on_submit=VersionsState.publish,
        ),
        width="100%",
    )


def _sample_view(s: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        *[
            rx.table.cell(rx.text(s[k], size="1"))
            for k in ("question", "reference", "base_answer", "tuned_answer")
        ],
        class_name="sample-row",
    )


def samples_card() -> rx.Component:
    return rx.card(
        rx.heading("Base vs tuned answers", size="4"),
        data_table(
            TrainingState.samples,
            _sample_view,
            headers=("Question", "Reference", "Base model", "Tuned model"),
        ),
        width="100%",
    )

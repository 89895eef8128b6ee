"""The curation card: which personal data to replace, dedupe settings, run the curation on the
queue, and the latest run's progress, counts and per-document reports. :class:`CurationState`
holds the settings the creator picks."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.badges import status_badge
from gptstudio.components.layout import submit_button
from gptstudio.pages.data.state import STATUS_COLORS, DataState
from gptstudio.services import dataset
from gptstudio.settings import get_settings
from gptstudio.state.errors import shows_error

PII_LABELS = {
    "email": "e-mails",
    "phone": "phone numbers",
    "card": "card numbers",
    "iban": "IBANs",
    "ip_address": "IP addresses",
    "national_id": "national ids",
}


class CurationState(DataState):
    pii: list[str] = list(dataset.PII_CATEGORIES)
    qa_model: str = ""

    @rx.event
    def opened(self) -> None:
        """A visit to the page: offer model-written questions when a model is configured."""
        self.qa_model = get_settings().qa_model

    @rx.event
    def toggle_pii(self, category: str, on: bool) -> None:
        chosen = set(self.pii) | {category} if on else set(self.pii) - {category}
        self.pii = [c for c in dataset.PII_CATEGORIES if c in chosen]

    @rx.event
    @shows_error
    def run_curation(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            threshold = float(str(form.get("threshold") or 0.7))
        except ValueError:
            self.error = "The near-duplicate threshold must be a number such as 0.7."
            return None
        dataset.start_curation(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            settings=dataset.CurationSettings(
                pii_categories=tuple(self.pii),
                near_duplicate_threshold=threshold,
                semantic_dedupe=bool(form.get("semantic")),
                model_qa=bool(form.get("model_qa")),
            ),
        )
        self.offset = 0
        self._refresh()
        return DataState.watch


def _settings_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.text("Replace personal data:", size="2"),
            rx.hstack(
                *[
                    rx.checkbox(
                        label,
                        checked=CurationState.pii.contains(key),
                        # Named so the form does not submit it by id (deprecated in Reflex);
                        # the handler reads the choice from the state, not the form.
                        name=f"pii-{key}",
                        id=f"pii-{key}",
                        on_change=lambda on, key=key: CurationState.toggle_pii(key, on),
                    )
                    for key, label in PII_LABELS.items()
                ],
                wrap="wrap",
            ),
            rx.checkbox(
                "Also remove paraphrases (semantic dedupe with MiniLM; slower)",
                name="semantic",
                id="semantic",
            ),
            rx.cond(
                CurationState.qa_model != "",
                rx.hstack(
                    rx.checkbox("Add model-written questions", name="model_qa", id="model-qa"),
                    rx.text("(", CurationState.qa_model, ")", size="2", color_scheme="gray"),
                    align="center",
                ),
            ),
            rx.hstack(
                rx.text("Near-duplicate threshold (Jaccard)", size="2"),
                rx.input(name="threshold", default_value="0.7", width="6em", id="threshold"),
                align="center",
            ),
            submit_button("Run curation", id="run-curation", disabled=DataState.busy),
        ),
        on_submit=CurationState.run_curation,
    )


def _latest_run() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text("Latest run: ", size="2"),
            status_badge(DataState.run_status, **STATUS_COLORS),
            rx.text(DataState.run_step, size="2", color_scheme="gray"),
            id="run-status",
        ),
        rx.progress(value=DataState.run_percent, width="100%"),
        rx.cond(DataState.run_error != "", rx.callout(DataState.run_error, color_scheme="red")),
        width="100%",
    )


def curation_card() -> rx.Component:
    return rx.card(
        rx.heading("Curation", size="4"),
        _settings_form(),
        rx.cond(DataState.run_status != "", _latest_run()),
        rx.cond(
            DataState.counts.length() > 0,
            rx.data_list.root(
                rx.foreach(
                    DataState.counts,
                    lambda c: rx.data_list.item(
                        rx.data_list.label(c["label"]), rx.data_list.value(c["value"])
                    ),
                ),
                id="counts",
            ),
        ),
        rx.foreach(
            DataState.reports,
            lambda r: rx.text(
                rx.text.strong(r["name"]),
                ": ",
                r["done"],
                " Personal data: ",
                r["pii"],
                ". Chunks: ",
                r["chunks"],
                ".",
                size="1",
                class_name="document-report",
            ),
        ),
        width="100%",
    )

"""The launch card: fine-tune on a dataset version (the newest pre-selected) with a base model,
preset (sized to the dataset), method, and optional epochs or step limit. :class:`LaunchState`
queues the job and starts following it."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.errors import InvalidInput
from gptstudio.pages.training.state import TrainingState
from gptstudio.services import dataset, training
from gptstudio.services.creator_tier import OverageNeedsConfirmation
from gptstudio.state.errors import shows_error

PRESETS = ["auto", "quick", "balanced", "thorough"]
METHODS = ["lora", "qlora-4bit", "qlora-8bit"]


class LaunchState(TrainingState):
    # Set when the job would go beyond the month's included compute: the form then asks to
    # confirm the overage (the creator's tier bills it) before the job starts.
    overage_notice: str = ""

    @rx.event
    @shows_error
    def launch(self, form: Any) -> Any:
        self.error = ""
        form = form if isinstance(form, dict) else {}
        actor = self._actor()
        versions = {
            str(d.version): d.id
            for d in dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        }
        chosen = str(form.get("dataset") or self.dataset_choice)
        if chosen not in versions:
            self.error = (
                "Choose a dataset version (snapshot one on the data page first)."
                if versions
                else "There is no dataset version yet: snapshot one on the data page first."
            )
            return None
        overrides = optional_whole_numbers(form, {"max_steps": "Max steps", "epochs": "Epochs"})
        try:
            job = training.start_job(
                actor=actor,
                dataset_id=int(versions[chosen] or 0),
                base_model=str(form.get("base_model", "") or ""),
                preset=str(form.get("preset") or "auto"),
                method=str(form.get("method") or "lora"),
                overrides=overrides,
                confirm_overage=bool(self.overage_notice and form.get("confirm_overage")),
            )
        except OverageNeedsConfirmation as needed:
            self.overage_notice = str(needed)
            return None
        self.overage_notice = ""
        self.selected_job = str(job.id)
        self._refresh()
        return [rx.toast.success(f"Job {job.id} queued."), TrainingState.watch]


def optional_whole_numbers(form: dict[str, Any], fields: dict[str, str]) -> dict[str, int]:
    """The form's optional number fields that were filled in; a bad one raises its name."""
    values = {}
    for name, label in fields.items():
        text = str(form.get(name, "") or "").strip()
        if not text:
            continue
        try:
            values[name] = int(text)
        except ValueError:
            raise InvalidInput(f"{label} must be a whole number.") from None
    return values


def launch_card() -> rx.Component:
    return rx.card(
        rx.heading("New fine-tune", size="4"),
        rx.form(
            rx.grid(
                rx.vstack(
                    rx.text("Dataset version", size="2"),
                    rx.select(
                        TrainingState.datasets,
                        name="dataset",
                        id="job-dataset",
                        placeholder="version",
                        value=TrainingState.dataset_choice,
                        on_change=TrainingState.choose_dataset,
                    ),
                ),
                rx.vstack(
                    rx.text("Base model", size="2"),
                    rx.select(
                        TrainingState.base_models,
                        name="base_model",
                        id="job-base",
                        placeholder="configured default",
                    ),
                ),
                rx.vstack(
                    rx.text("Preset", size="2"),
                    rx.select(PRESETS, name="preset", default_value="auto", id="job-preset"),
                ),
                rx.vstack(
                    rx.text("Method", size="2"),
                    rx.select(METHODS, name="method", default_value="lora", id="job-method"),
                ),
                rx.vstack(
                    rx.text("Epochs (optional)", size="2"),
                    rx.input(
                        name="epochs",
                        type="number",
                        min=1,
                        id="job-epochs",
                        placeholder="sized to the data",
                    ),
                ),
                rx.vstack(
                    rx.text("Max steps (optional)", size="2"),
                    rx.input(name="max_steps", type="number", min=1, id="job-steps"),
                ),
                # One field a row on a phone, two on a small tablet, all six on a desktop.
                columns=rx.breakpoints(initial="1", xs="2", sm="3", md="6"),
                spacing="3",
                width="100%",
            ),
            rx.text(
                "Dataset version ",
                TrainingState.dataset_choice,
                ": ",
                TrainingState.dataset_splits.get(TrainingState.dataset_choice, ""),
                size="1",
                margin_top="0.5em",
                id="dataset-splits",
            ),
            rx.text(
                "Presets are sized to the dataset: rows fit its longest example and small sets "
                "get more passes, so that a run makes enough optimizer steps to learn. Epochs "
                "or max steps, when filled in, override that.",
                size="1",
                color_scheme="gray",
                margin_top="0.5em",
            ),
            rx.cond(
                LaunchState.overage_notice != "",
                rx.callout(
                    rx.vstack(
                        rx.text(LaunchState.overage_notice, id="overage-notice"),
                        rx.checkbox(
                            "Start the job and bill the overage",
                            name="confirm_overage",
                            id="job-confirm-overage",
                        ),
                    ),
                    icon="triangle_alert",
                    color_scheme="amber",
                    margin_top="1em",
                ),
            ),
            submit_button("Start training", id="job-start", margin_top="1em"),
            on_submit=LaunchState.launch,
            reset_on_submit=False,
        ),
        width="100%",
    )

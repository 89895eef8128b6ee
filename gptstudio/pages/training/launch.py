"""The launch card: fine-tune on a dataset version with a base model, preset, method and an
optional step limit. :class:`LaunchState` queues the job and starts following it."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.pages.training.state import TrainingState
from gptstudio.services import dataset, training
from gptstudio.state.errors import shows_error

PRESETS = ["auto", "quick", "balanced", "thorough"]
METHODS = ["lora", "qlora-4bit", "qlora-8bit"]


class LaunchState(TrainingState):
    @rx.event
    @shows_error
    def launch(self, form: dict[str, Any]) -> Any:
        self.error = ""
        actor = self._actor()
        versions = {
            str(d.version): d.id
            for d in dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        }
        overrides: dict[str, Any] = {}
        try:
            if str(form.get("max_steps", "")).strip():
                overrides["max_steps"] = int(str(form["max_steps"]))
        except ValueError:
            self.error = "Max steps must be a whole number."
            return None
        job = training.start_job(
            actor=actor,
            dataset_id=int(versions.get(str(form.get("dataset", "")), 0) or 0),
            base_model=str(form.get("base_model", "")),
            preset=str(form.get("preset") or "auto"),
            method=str(form.get("method") or "lora"),
            overrides=overrides,
        )
        self.selected_job = str(job.id)
        self._refresh()
        return [rx.toast.success(f"Job {job.id} queued."), TrainingState.watch]


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
                    rx.text("Max steps (optional)", size="2"),
                    rx.input(name="max_steps", type="number", id="job-steps"),
                ),
                columns="5",
                spacing="3",
                width="100%",
            ),
            submit_button("Start training", id="job-start", margin_top="1em"),
            on_submit=LaunchState.launch,
            reset_on_submit=False,
        ),
        width="100%",
    )

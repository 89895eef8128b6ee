"""The training page (``/assistant/training?id=N``): its cards, top to bottom."""

from __future__ import annotations

import reflex as rx

from gptstudio.components.layout import assistant_header, form_error, page
from gptstudio.pages.registry import add_page
from gptstudio.pages.training.jobs import jobs_card, live_card
from gptstudio.pages.training.launch import launch_card
from gptstudio.pages.training.preview import preview_card
from gptstudio.pages.training.state import TrainingState
from gptstudio.pages.training.versions import samples_card, versions_card


@add_page(route="/assistant/training", title="Training · GPT Studio", on_load=TrainingState.load)
def training_page() -> rx.Component:
    return page(
        assistant_header(),
        form_error(TrainingState.error),
        launch_card(),
        rx.cond(TrainingState.jobs.length() > 0, jobs_card()),
        rx.cond(TrainingState.selected_job != "", live_card()),
        rx.cond(TrainingState.versions.length() > 0, versions_card()),
        rx.cond(TrainingState.samples.length() > 0, samples_card()),
        rx.cond(TrainingState.versions.length() > 0, preview_card()),
        max_width="1200px",
    )

"""The data page (``/assistant/data?id=N``): its cards, top to bottom, and what a visit loads."""

from __future__ import annotations

import reflex as rx

from gptstudio.pages.registry import add_page

from gptstudio.components.layout import assistant_header, form_error, page
from gptstudio.pages.data.curation import CurationState, curation_card
from gptstudio.pages.data.datasets import DatasetsState, datasets_card
from gptstudio.pages.data.documents import DocumentsState, documents_card
from gptstudio.pages.data.feedback import FeedbackState, feedback_card
from gptstudio.pages.data.review import duplicates_card, examples_card
from gptstudio.pages.data.state import DataState


@add_page(
    route="/assistant/data",
    title="Data · GPT Studio",
    on_load=[
        DataState.load, DocumentsState.opened, CurationState.opened, DatasetsState.opened,
        FeedbackState.opened,
    ],  # fmt: skip
)
def data() -> rx.Component:
    return page(
        assistant_header(),
        form_error(DataState.error),
        documents_card(),
        curation_card(),
        rx.cond(DataState.duplicates.length() > 0, duplicates_card()),
        rx.cond(DataState.example_total > 0, examples_card()),
        datasets_card(),
        feedback_card(),
        max_width="1100px",
    )

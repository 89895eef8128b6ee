"""The retrieval card: answer from the creator's documents with citations (on or off, passages
per answer) and the sources index (its state, rebuild it). :class:`RetrievalState` holds the
handlers."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.pages.assistant_settings.state import NO_RETRIEVAL, SettingsState, describe_index
from gptstudio.services import assistant_settings
from gptstudio.state.errors import shows_error


class RetrievalState(SettingsState):
    @rx.event
    def set_rag_enabled(self, value: bool) -> None:
        self.rag_enabled = value

    @rx.event
    def set_top_k_text(self, value: str) -> None:
        self.top_k_text = value

    @rx.event
    def set_rag_originals(self, value: bool) -> None:
        self.rag_originals = value

    @rx.event
    @shows_error
    def save_retrieval(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            top_k = int(self.top_k_text.strip())
        except ValueError:
            self.error = "Passages per answer must be a whole number from 1 to 20."
            return None
        saved = assistant_settings.update_retrieval(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            enabled=self.rag_enabled,
            top_k=top_k,
            originals_for_subscribers=self.rag_originals,
        )
        self.rag_enabled, self.top_k_text = saved.rag_enabled, str(saved.rag_top_k)
        self.rag_originals = saved.rag_originals_for_subscribers
        self._refresh_index()
        if self.index_building:
            return [rx.toast.info("Saved; building the sources index."), SettingsState.follow_index]
        return rx.toast.success("Retrieval settings saved.")

    @rx.event
    @shows_error
    def rebuild_index(self) -> Any:
        self.error = ""
        try:
            from gptstudio.services import retrieval
        except ImportError:
            self.index_text = NO_RETRIEVAL
            return None
        status = retrieval.request_build(actor=self._actor(), assistant_id=self.assistant_id)
        self.index_text = describe_index(status)
        self.index_building = status.state == "building"
        return [rx.toast.info("Rebuilding the sources index."), SettingsState.follow_index]


def retrieval_card() -> rx.Component:
    return rx.card(
        rx.heading("Retrieval and citations", size="4"),
        rx.form(
            rx.flex(
                rx.hstack(
                    rx.switch(
                        checked=SettingsState.rag_enabled,
                        on_change=RetrievalState.set_rag_enabled,
                        name="rag_enabled",
                        id="rag-enabled",
                    ),
                    rx.text("Search my documents and cite them in answers", size="2"),
                    align="center",
                ),
                rx.hstack(
                    rx.text("Passages per answer", size="2"),
                    rx.input(
                        name="top_k",
                        type="number",
                        min=1,
                        max=20,
                        value=SettingsState.top_k_text,
                        on_change=RetrievalState.set_top_k_text,
                        width="5em",
                        id="rag-top-k",
                    ),
                    align="center",
                ),
                rx.hstack(
                    rx.switch(
                        checked=SettingsState.rag_originals,
                        on_change=RetrievalState.set_rag_originals,
                        name="rag_originals",
                        id="rag-originals",
                    ),
                    rx.text(
                        "Subscribers may open the original files (before personal data is "
                        "removed); otherwise a citation shows the cleaned passage",
                        size="2",
                    ),
                    align="center",
                ),
                rx.button("Save", type="submit", size="2", variant="soft", id="rag-save"),
                gap="4",
                wrap="wrap",
                align="center",
            ),
            on_submit=RetrievalState.save_retrieval,
        ),
        rx.hstack(
            rx.cond(SettingsState.index_building, rx.spinner(size="1")),
            rx.text("Sources index: ", SettingsState.index_text, size="2", id="index-status"),
            rx.spacer(),
            rx.button(
                "Rebuild index",
                size="1",
                variant="soft",
                on_click=RetrievalState.rebuild_index,
                id="rebuild-index",
            ),
            rx.button("Refresh", size="1", variant="ghost", on_click=SettingsState.refresh),
            width="100%",
            align="center",
            margin_top="0.5em",
            wrap="wrap",
        ),
        width="100%",
    )

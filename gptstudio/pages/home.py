"""The subscriber home: the published assistants the user can chat with."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.assistant_card import assistant_card, assistant_row
from gptstudio.components.layout import link_button, page
from gptstudio.pages.registry import add_page
from gptstudio.services import assistant
from gptstudio.state.auth import AuthState


class HomeState(AuthState):
    assistants: list[dict[str, str]] = []

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        self.assistants = [assistant_row(a) for a in assistant.list_available(actor=self._actor())]
        return None


def _card(item: rx.Var[dict[str, str]]) -> rx.Component:
    return assistant_card(
        item,
        footer=rx.hstack(
            link_button("Chat", "/chat?assistant=" + item["slug"], size="1"),
            link_button("Plans", "/pricing?assistant=" + item["id"], size="1", variant="soft"),
        ),
    )


@add_page(route="/home", title="Assistants · GPT Studio", on_load=HomeState.load)
def home() -> rx.Component:
    return page(
        rx.heading("Assistants you can chat with", size="7"),
        rx.text("Hello, ", AuthState.display_name, ".", id="greeting"),
        rx.cond(
            HomeState.assistants.length() > 0,
            rx.vstack(rx.foreach(HomeState.assistants, _card), width="100%"),
            rx.text(
                "No assistant is published yet. Come back when creators have published theirs.",
                color_scheme="gray",
                id="empty-home",
            ),
        ),
    )

"""The public landing page."""

from __future__ import annotations

import reflex as rx

from gptstudio.components.layout import link_button, page
from gptstudio.pages.registry import add_page
from gptstudio.state.auth import AuthState

FEATURES = [
    ("Upload your knowledge", "PDF, Word, HTML, Markdown, CSV and web pages, cleaned and deduped."),
    ("Fine-tune an expert", "LoRA and QLoRA on open models, evaluated against the base model."),
    ("Get paid", "Subscribers chat in the app, in a widget on your site, or through an API."),
]


def _feature(title: str, body: str) -> rx.Component:
    return rx.card(
        rx.heading(title, size="4"),
        rx.text(body, color_scheme="gray"),
        flex="1 1 14em",  # side by side when there is room, stacked on a phone
    )


@add_page(route="/", title="GPT Studio", on_load=AuthState.load_optional_user)
def landing() -> rx.Component:
    return page(
        rx.heading("Turn your documents into a paid expert assistant", size="8"),
        rx.text(
            "GPT Studio is self-hosted software for domain experts: curate your material, "
            "train an open model on it, and publish it to subscribers.",
            size="4",
        ),
        rx.cond(
            AuthState.signed_in,
            link_button("Go to your dashboard", AuthState.home_path, size="3"),
            rx.hstack(
                link_button("Create an account", "/signup", size="3"),
                link_button("Log in", "/login", size="3", variant="outline"),
            ),
        ),
        rx.flex(*[_feature(t, b) for t, b in FEATURES], spacing="4", wrap="wrap"),
    )

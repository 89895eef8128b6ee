"""The heading and tabs every page of the signed-in user's account opens with."""

from __future__ import annotations

import reflex as rx

from gptstudio.components.layout import tabs

ACCOUNT_PAGES = (
    ("Security", "/account"),
    ("Sessions", "/account/sessions"),
    ("API keys", "/account/keys"),
    ("Your data", "/account/data"),
)


def account_header(current: str) -> tuple[rx.Component, rx.Component]:
    """The title and the tabs, ``current`` (a route) selected."""
    return rx.heading("Your account", size="7"), tabs(ACCOUNT_PAGES, current)

"""Form fields used on several pages: a password box and a labelled input."""

from __future__ import annotations

from typing import Any

import reflex as rx


def password_input(name: str, **props: Any) -> rx.Component:
    """A required password box named ``name``; ``props`` add an id, placeholder or width."""
    return rx.input(name=name, type="password", required=True, **props)


def labelled_input(label: str, **props: Any) -> rx.Component:
    """A full-width input with its label above it."""
    return rx.vstack(
        rx.text(label, as_="label", size="2", weight="medium"),
        rx.input(width="100%", **props),
        spacing="1",
        width="100%",
    )

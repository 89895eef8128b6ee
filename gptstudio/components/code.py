"""Code and secrets to copy: a copy button, a preformatted block with one, and the green callout
that shows a new secret once."""

from __future__ import annotations

import reflex as rx


def copy_button(text: rx.Var[str] | str) -> rx.Component:
    """A small button that copies ``text`` to the clipboard."""
    return rx.button(rx.icon("copy"), size="1", variant="soft", on_click=rx.set_clipboard(text))


def code_block(text: rx.Var[str] | str, id_: str) -> rx.Component:
    """Preformatted code, wrapped to the width of the page."""
    return rx.el.pre(
        text,
        id=id_,
        white_space="pre-wrap",
        word_break="break-all",
        font_family="var(--code-font-family)",
        font_size="13px",
        background="var(--gray-3)",
        padding="0.75em",
        border_radius="6px",
        margin="0",
        width="100%",
    )


def copyable_code(text: rx.Var[str] | str, id_: str) -> rx.Component:
    """A code block with a copy button beside it."""
    return rx.hstack(code_block(text, id_), copy_button(text), align="start", width="100%")


def secret_callout(
    message: str, secret: rx.Var[str], *, id_: str, actions: tuple[rx.Component, ...] = ()
) -> rx.Component:
    """A new key or secret with what to do with it, a copy button and any further ``actions``."""
    return rx.callout.root(
        rx.vstack(
            rx.text(message),
            rx.hstack(rx.code(secret, id=id_), copy_button(secret), *actions),
        ),
        color_scheme="green",
    )

"""Page chrome: the navigation bar and the centred page body."""

from __future__ import annotations

import reflex as rx

from gptstudio.state.auth import AuthState


def _nav_link(label: str, href: str) -> rx.Component:
    return rx.link(label, href=href, size="3", weight="medium")


def navbar() -> rx.Component:
    """Brand, the links the signed-in user's role allows, and log out."""
    return rx.hstack(
        rx.link(rx.heading("GPT Studio", size="5"), href="/", underline="none"),
        rx.spacer(),
        rx.cond(
            AuthState.signed_in,
            rx.hstack(
                rx.cond(AuthState.role == "admin", _nav_link("Admin", "/admin")),
                rx.cond(AuthState.role != "subscriber", _nav_link("Dashboard", "/dashboard")),
                rx.cond(AuthState.role != "subscriber", _nav_link("Revenue", "/revenue")),
                _nav_link("Assistants", "/home"),
                _nav_link("Usage", "/usage"),
                _nav_link("Account", "/account"),
                rx.badge(AuthState.role, id="nav-role"),
                rx.text(AuthState.email, size="2", color_scheme="gray", id="nav-email"),
                rx.button("Log out", on_click=AuthState.logout, variant="soft", id="logout"),
                spacing="4",
                align="center",
            ),
            rx.hstack(
                _nav_link("Log in", "/login"),
                rx.link(rx.button("Sign up"), href="/signup"),
                spacing="4",
                align="center",
            ),
        ),
        padding="1em 2em",
        border_bottom="1px solid var(--gray-5)",
        width="100%",
        align="center",
        wrap="wrap",
    )


def page(*children: rx.Component, max_width: str = "960px") -> rx.Component:
    """A page: the navbar above a centred column."""
    return rx.box(
        navbar(),
        rx.container(
            rx.vstack(*children, spacing="5", width="100%"),
            size="3",
            max_width=max_width,
            padding_y="2em",
        ),
        min_height="100vh",
    )


def form_error(message: rx.Var[str]) -> rx.Component:
    """An inline error under a form title; nothing when ``message`` is empty."""
    return rx.cond(
        message != "",
        rx.callout(message, icon="triangle_alert", color_scheme="red", id="form-error"),
    )


def table_header(*titles: str) -> rx.Component:
    """A table's header row with one column title per argument."""
    return rx.table.header(rx.table.row(*[rx.table.column_header_cell(t) for t in titles]))


def submit_button(
    *children: rx.Component | str, disabled: rx.Var[bool] | bool = False, **props: object
) -> rx.Component:
    """A form's submit button, disabled until the page is connected to the server, so that a
    click made while the page is still loading is never lost."""
    return rx.button(*children, type="submit", disabled=~rx.State.is_hydrated | disabled, **props)

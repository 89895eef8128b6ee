"""Page chrome: the navigation bar, the centred page body, the header of a page about one
assistant, tabs between sibling pages, and the two pieces every form has (its error callout and
its submit button)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import reflex as rx

from gptstudio.state.auth import AuthState
from gptstudio.state.owned_assistant import AssistantPageState


def _nav_link(label: str, href: str) -> rx.Component:
    return rx.link(label, href=href, size="3", weight="medium")


# (label, address, who sees it): the same links in the bar (wide screens) and in the menu.
_LINKS: tuple[tuple[str, str, str], ...] = (
    ("Admin", "/admin", "admin"),
    ("Dashboard", "/dashboard", "creator"),
    ("Revenue", "/revenue", "creator"),
    ("Tier", "/studio/tier", "creator only"),
    ("Assistants", "/home", "all"),
    ("Usage", "/usage", "all"),
    ("Account", "/account", "all"),
)

# The bar shows every link from 62em (992 px) up; below that they are in the menu.
_WIDE = ["none", "none", "none", "flex"]
_NARROW = ["flex", "flex", "flex", "none"]


def _for_role(who: str, component: rx.Component) -> rx.Component:
    if who == "admin":
        return rx.cond(AuthState.role == "admin", component)
    if who == "creator":  # creators and admins
        return rx.cond(AuthState.role != "subscriber", component)
    if who == "creator only":  # a creator's own GPT Studio tier (admins have none)
        return rx.cond(AuthState.role == "creator", component)
    return component


def _nav_menu() -> rx.Component:
    """Phones and tablets: the links, who is signed in and Log out, behind one button."""
    return rx.menu.root(
        rx.menu.trigger(
            rx.icon_button(
                rx.icon("menu", size=20),
                variant="soft",
                size="3",
                id="nav-menu",
                aria_label="Menu",
            )
        ),
        rx.menu.content(
            rx.box(
                rx.text(AuthState.email, size="2", weight="medium", id="menu-email"),
                rx.badge(AuthState.role, margin_top="0.25em"),
                padding="0.5em 0.75em",
            ),
            rx.menu.separator(),
            *[
                _for_role(who, rx.menu.item(label, on_click=rx.redirect(href)))
                for label, href, who in _LINKS
            ],
            rx.menu.separator(),
            rx.menu.item("Log out", on_click=AuthState.logout, id="menu-logout"),
            align="end",
            min_width="14em",
            max_width="calc(100vw - 16px)",
        ),
    )


def navbar() -> rx.Component:
    """Brand, the links the signed-in user's role allows, and log out; on a narrow screen the
    links, the user and Log out are in a menu."""
    return rx.hstack(
        rx.link(rx.heading("GPT Studio", size="5"), href="/", underline="none"),
        rx.spacer(),
        rx.cond(
            AuthState.signed_in,
            rx.fragment(
                rx.hstack(
                    *[_for_role(who, _nav_link(label, href)) for label, href, who in _LINKS],
                    rx.badge(AuthState.role, id="nav-role"),
                    rx.text(AuthState.email, size="2", color_scheme="gray", id="nav-email"),
                    rx.button("Log out", on_click=AuthState.logout, variant="soft", id="logout"),
                    spacing="4",
                    align="center",
                    display=_WIDE,
                ),
                rx.box(_nav_menu(), display=_NARROW),
            ),
            rx.hstack(
                _nav_link("Log in", "/login"),
                link_button("Sign up", "/signup"),
                spacing="4",
                align="center",
            ),
        ),
        padding=["0.5em 1em", "0.5em 1em", "0.75em 1.5em", "1em 2em"],
        border_bottom="1px solid var(--gray-5)",
        width="100%",
        align="center",
    )


def page(*children: rx.Component, max_width: str = "960px") -> rx.Component:
    """A page: the navbar above a centred column."""
    return rx.box(
        navbar(),
        rx.container(
            rx.vstack(_refusal(), *children, spacing="5", width="100%"),
            size="3",
            max_width=max_width,
            padding_y=["1em", "1em", "2em"],
        ),
        min_height="100vh",
    )


def _refusal() -> rx.Component:
    """Why the page the user asked for sent them here (their role), until they go on."""
    return rx.cond(
        AuthState.refused != "",
        rx.callout(
            rx.hstack(
                rx.text(AuthState.refused, size="2"),
                rx.button("Dismiss", size="1", variant="ghost", on_click=AuthState.dismiss_refusal),
                justify="between",
                align="center",
                width="100%",
            ),
            icon="info",
            color_scheme="amber",
            id="refused",
            width="100%",
        ),
    )


def assistant_header() -> rx.Component:
    """The title of a page about one of the creator's assistants, with the way back."""
    return rx.flex(
        rx.link("← Dashboard", href="/dashboard", size="2"),
        rx.heading(AssistantPageState.assistant_name, size=rx.breakpoints(initial="6", sm="7")),
        align="center",
        column_gap="1em",
        row_gap="0.25em",
        wrap="wrap",
    )


def form_error(message: rx.Var[str]) -> rx.Component:
    """An inline error under a form title; nothing when ``message`` is empty."""
    return rx.cond(
        message != "",
        rx.callout(message, icon="triangle_alert", color_scheme="red", id="form-error"),
    )


def link_button(label: str, href: rx.Var[str] | str, **props: Any) -> rx.Component:
    """A button that goes to ``href``; ``props`` style the button."""
    return rx.link(rx.button(label, **props), href=href)


def tabs(links: Sequence[tuple[str, str]], current: str) -> rx.Component:
    """Buttons linking sibling pages (``(label, href)`` pairs); the one at ``current`` is solid."""
    return rx.hstack(
        *[
            link_button(label, href, variant="solid" if href == current else "soft")
            for label, href in links
        ],
        spacing="2",
        wrap="wrap",
    )


def submit_button(
    *children: rx.Component | str, disabled: rx.Var[bool] | bool = False, **props: object
) -> rx.Component:
    """A form's submit button, disabled until the page is connected to the server, so that a
    click made while the page is still loading is never lost."""
    return rx.button(*children, type="submit", disabled=~rx.State.is_hydrated | disabled, **props)

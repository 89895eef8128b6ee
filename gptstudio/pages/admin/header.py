"""The heading and tabs every admin page opens with."""

from __future__ import annotations

import reflex as rx

from gptstudio.components.layout import tabs

ADMIN_PAGES = (("Users", "/admin"), ("Tiers", "/admin/tiers"), ("Audit log", "/admin/audit"))


def admin_header(current: str) -> tuple[rx.Component, rx.Component]:
    """The title and the tabs, ``current`` (a route) selected."""
    return rx.heading("Administration", size="7"), tabs(ADMIN_PAGES, current)

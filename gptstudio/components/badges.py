"""Badges whose colour follows the value they show."""

from __future__ import annotations

import reflex as rx


def status_badge(status: rx.Var[str], default: str = "orange", **colors: str) -> rx.Component:
    """A badge showing ``status``, coloured by ``colors`` (status → colour scheme), else
    ``default``: ``status_badge(s, done="green", failed="red")``."""
    return rx.badge(status, color_scheme=rx.match(status, *colors.items(), default))

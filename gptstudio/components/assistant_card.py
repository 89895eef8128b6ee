"""An assistant as a card (its name, description and the links that fit the page), and the row
of plain strings such a card shows."""

from __future__ import annotations

import reflex as rx

from gptstudio.models.assistant import AssistantPublic


def assistant_row(item: AssistantPublic) -> dict[str, str]:
    """What a card shows of an assistant."""
    return {
        "id": str(item.id),
        "name": item.name,
        "slug": item.slug,
        "description": item.description or "No description yet.",
        "status": "published" if item.is_published else "draft",
        "created": item.created_at.strftime("%Y-%m-%d"),
    }


def assistant_card(
    item: rx.Var[dict[str, str]], *, footer: rx.Component, title: rx.Component | None = None
) -> rx.Component:
    """The card of one :func:`assistant_row`: ``title`` (the name by default), the description,
    then ``footer``."""
    return rx.card(
        title if title is not None else rx.heading(item["name"], size="4"),
        rx.text(item["description"], color_scheme="gray", size="2"),
        footer,
        width="100%",
        class_name="assistant-card",
    )

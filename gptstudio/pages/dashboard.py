"""The creator dashboard: the creator's assistants and "create assistant"."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.models.assistant import AssistantPublic
from gptstudio.services import assistant
from gptstudio.state.auth import AuthState


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


class DashboardState(AuthState):
    assistants: list[dict[str, str]] = []
    error: str = ""
    show_form: bool = False

    @rx.event
    def load(self) -> Any:
        refused = self._guard(assistant.Role.creator)
        if refused is not None:
            return refused
        self.assistants = [assistant_row(a) for a in assistant.list_owned(actor=self._actor())]
        return None

    @rx.event
    def toggle_form(self) -> None:
        self.show_form = not self.show_form
        self.error = ""

    @rx.event
    def create(self, form: dict[str, Any]) -> Any:
        actor = self._actor()
        try:
            created = assistant.create_assistant(
                actor=actor,
                name=str(form.get("name", "")),
                description=str(form.get("description", "")),
            )
        except assistant.InvalidInput as error:
            self.error = str(error)
            return None
        self.error = ""
        self.show_form = False
        self.assistants = [assistant_row(created), *self.assistants]
        return rx.toast.success(f"Assistant “{created.name}” created.")


def _card(item: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading(item["name"], size="4"),
            rx.spacer(),
            rx.badge(item["status"]),
        ),
        rx.text(item["description"], color_scheme="gray", size="2"),
        rx.hstack(
            rx.text("Created ", item["created"], size="1", color_scheme="gray"),
            rx.spacer(),
            rx.link(
                rx.button("Documents and data", size="1", variant="soft"),
                href="/assistant/data?id=" + item["id"],
            ),
            rx.link(
                rx.button("Training", size="1", variant="soft"),
                href="/assistant/training?id=" + item["id"],
            ),
            rx.link(
                rx.button("Settings", size="1", variant="soft"),
                href="/assistant/settings?id=" + item["id"],
            ),
            rx.link(
                rx.button("Plans", size="1", variant="soft"),
                href="/assistant/plans?id=" + item["id"],
            ),
            rx.link(
                rx.button("Widget", size="1", variant="soft"),
                href="/assistant/widget?id=" + item["id"],
            ),
            wrap="wrap",
            width="100%",
        ),
        width="100%",
        class_name="assistant-card",
    )


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("New assistant", size="4"),
                form_error(DashboardState.error),
                rx.input(
                    name="name",
                    placeholder="Name, e.g. Beekeeping Mentor",
                    id="assistant-name",
                    required=True,
                    width="100%",
                ),
                rx.text_area(
                    name="description",
                    placeholder="What does it know? Who is it for?",
                    id="assistant-description",
                    width="100%",
                ),
                rx.hstack(
                    submit_button("Create", id="create-submit"),
                    rx.button(
                        "Cancel", type="button", variant="soft", on_click=DashboardState.toggle_form
                    ),
                ),
                spacing="3",
            ),
            on_submit=DashboardState.create,
            reset_on_submit=True,
        ),
        width="100%",
    )


@rx.page(route="/dashboard", title="Dashboard · GPT Studio", on_load=DashboardState.load)
def dashboard() -> rx.Component:
    return page(
        rx.hstack(
            rx.heading("Your assistants", size="7"),
            rx.spacer(),
            rx.button(
                "Create assistant", on_click=DashboardState.toggle_form, id="create-assistant"
            ),
            width="100%",
            align="center",
        ),
        rx.cond(DashboardState.show_form, _create_form()),
        rx.cond(
            DashboardState.assistants.length() > 0,
            rx.vstack(rx.foreach(DashboardState.assistants, _card), width="100%"),
            rx.text(
                "You have no assistants yet. Create one, then upload the documents it should know.",
                color_scheme="gray",
                id="empty-dashboard",
            ),
        ),
    )

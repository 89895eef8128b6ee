"""The creator dashboard: the creator's assistants and "create assistant"."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.assistant_card import assistant_card, assistant_row
from gptstudio.components.layout import form_error, link_button, page, submit_button
from gptstudio.errors import DomainError
from gptstudio.pages.registry import add_page
from gptstudio.services import assistant
from gptstudio.state.auth import AuthState


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
        except DomainError as error:  # a bad name, or the creator's tier allows no more
            self.error = str(error)
            return None
        self.error = ""
        self.show_form = False
        self.assistants = [assistant_row(created), *self.assistants]
        return rx.toast.success(f"Assistant “{created.name}” created.")


# The creator's pages about one assistant, linked from its card.
ASSISTANT_PAGES = (
    ("Documents and data", "/assistant/data"),
    ("Training", "/assistant/training"),
    ("Settings", "/assistant/settings"),
    ("Plans", "/assistant/plans"),
    ("Widget", "/assistant/widget"),
)


def _card(item: rx.Var[dict[str, str]]) -> rx.Component:
    return assistant_card(
        item,
        title=rx.hstack(rx.heading(item["name"], size="4"), rx.spacer(), rx.badge(item["status"])),
        footer=rx.hstack(
            rx.text("Created ", item["created"], size="1", color_scheme="gray"),
            rx.spacer(),
            *[
                link_button(label, f"{path}?id=" + item["id"], size="1", variant="soft")
                for label, path in ASSISTANT_PAGES
            ],
            wrap="wrap",
            width="100%",
        ),
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


@add_page(route="/dashboard", title="Dashboard · GPT Studio", on_load=DashboardState.load)
def dashboard() -> rx.Component:
    return page(
        rx.hstack(
            rx.heading("Your assistants", size="7"),
            rx.spacer(),
            link_button(
                "Import a bundle", "/assistants/import", variant="soft", id="import-bundle"
            ),
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

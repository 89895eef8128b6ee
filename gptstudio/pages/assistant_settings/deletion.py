"""The deletion card: what deleting the assistant takes with it, and the form that does it once
the creator has typed the assistant's name. :class:`DeletionState` holds the handler."""

from __future__ import annotations

import asyncio
from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.errors import DomainError
from gptstudio.pages.assistant_settings.state import SettingsState
from gptstudio.services import erasure


class DeletionState(SettingsState):
    deleting: bool = False
    # Shown in the card, at the bottom of a long page, where the creator is looking.
    delete_error: str = ""

    @rx.event(background=True)
    async def delete_assistant(self, form: dict[str, Any]) -> Any:
        async with self:
            if self.deleting:
                return None
            self.deleting, self.delete_error = True, ""
            actor, client, assistant_id = self._actor(), self._client(), self.assistant_id
            name = self.assistant_name
        try:
            await asyncio.to_thread(
                erasure.delete_assistant, actor=actor, assistant_id=assistant_id,
                confirm=str(form.get("confirm", "")), client=client,
            )  # fmt: skip
        except DomainError as error:
            async with self:
                self.delete_error, self.deleting = str(error), False
            return None
        async with self:
            self.deleting = False
        return [rx.toast.success(f"{name} is deleted."), rx.redirect("/dashboard")]


def deletion_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Delete this assistant", size="4", color_scheme="red"),
            rx.text(SettingsState.impact_text, size="2", id="delete-impact"),
            rx.cond(
                DeletionState.delete_error != "",
                rx.callout(
                    DeletionState.delete_error,
                    icon="triangle_alert",
                    color_scheme="red",
                    id="delete-assistant-error",
                ),
            ),
            rx.form(
                rx.hstack(
                    rx.input(
                        name="confirm",
                        placeholder="Type the assistant's name to confirm",
                        id="delete-assistant-confirm",
                        required=True,
                        auto_complete="off",
                        width="100%",
                    ),
                    submit_button(
                        "Delete for good",
                        color_scheme="red",
                        loading=DeletionState.deleting,
                        id="delete-assistant",
                    ),
                    width="100%",
                ),
                on_submit=DeletionState.delete_assistant,
                reset_on_submit=True,
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="delete-assistant-card",
    )

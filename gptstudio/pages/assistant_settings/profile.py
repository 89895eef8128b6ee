"""The profile card: name, description and persona (the system prompt), edited in place and
saved together. :class:`ProfileState` holds the handlers."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import submit_button
from gptstudio.pages.assistant_settings.state import SettingsState
from gptstudio.services import assistant_settings
from gptstudio.state.errors import shows_error


class ProfileState(SettingsState):
    @rx.event
    @shows_error
    def save_profile(self, form: dict[str, Any]) -> Any:
        self.error = ""
        saved = assistant_settings.update_profile(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            name=str(form.get("name", "")),
            description=str(form.get("description", "")),
            system_prompt=str(form.get("system_prompt", "")),
            client=self._client(),
        )
        self.name, self.description, self.system_prompt = (
            saved.name,
            saved.description,
            saved.system_prompt,
        )
        self.assistant_name = saved.name
        return rx.toast.success("Saved: new conversations use the new persona.")

    @rx.event
    def set_name(self, value: str) -> None:
        self.name = value

    @rx.event
    def set_description(self, value: str) -> None:
        self.description = value

    @rx.event
    def set_system_prompt(self, value: str) -> None:
        self.system_prompt = value


def profile_card() -> rx.Component:
    return rx.card(
        rx.heading("Profile and persona", size="4"),
        rx.form(
            rx.vstack(
                rx.text("Name", size="2"),
                rx.input(
                    name="name",
                    value=SettingsState.name,
                    on_change=ProfileState.set_name,
                    max_length=120,
                    width="100%",
                    id="settings-name",
                ),
                rx.text("Description", size="2"),
                rx.text_area(
                    name="description",
                    value=SettingsState.description,
                    on_change=ProfileState.set_description,
                    max_length=2000,
                    width="100%",
                    rows="3",
                    id="settings-description",
                ),
                rx.text("Persona (system prompt)", size="2"),
                rx.text(
                    "Sent first in every conversation: who the assistant is, its tone, what it "
                    "must not do.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.text_area(
                    name="system_prompt",
                    value=SettingsState.system_prompt,
                    on_change=ProfileState.set_system_prompt,
                    max_length=8000,
                    width="100%",
                    rows="6",
                    id="settings-persona",
                ),
                submit_button("Save", id="settings-save"),
                width="100%",
            ),
            on_submit=ProfileState.save_profile,
            width="100%",
        ),
        width="100%",
    )

"""The profile card: name, description and persona (the system prompt), edited in place and
saved together; and the welcome card: the chat's greeting and conversation starters.
:class:`ProfileState` holds the handlers."""

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
    @shows_error
    def save_welcome(self, form: dict[str, Any]) -> Any:
        self.error = ""
        saved = assistant_settings.update_welcome(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            welcome_message=str(form.get("welcome_message", "")),
            starters=str(form.get("starters", "")).splitlines(),
        )
        self.welcome_message = saved.welcome_message
        self.starters_text = "\n".join(saved.conversation_starters)
        return rx.toast.success("Saved: the chat opens with this welcome.")

    @rx.event
    def set_welcome_message(self, value: str) -> None:
        self.welcome_message = value

    @rx.event
    def set_starters_text(self, value: str) -> None:
        self.starters_text = value

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


def welcome_card() -> rx.Component:
    return rx.card(
        rx.heading("Welcome and conversation starters", size="4"),
        rx.form(
            rx.vstack(
                rx.text("Welcome message", size="2"),
                rx.text(
                    "Shown when a new chat opens, in the web app and the widget.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.text_area(
                    name="welcome_message",
                    value=SettingsState.welcome_message,
                    on_change=ProfileState.set_welcome_message,
                    max_length=2000,
                    width="100%",
                    rows="3",
                    id="settings-welcome",
                ),
                rx.text("Conversation starters (one per line, at most 6)", size="2"),
                rx.text_area(
                    name="starters",
                    value=SettingsState.starters_text,
                    on_change=ProfileState.set_starters_text,
                    width="100%",
                    rows="4",
                    id="settings-starters",
                ),
                submit_button("Save", id="settings-welcome-save"),
                width="100%",
            ),
            on_submit=ProfileState.save_welcome,
            width="100%",
        ),
        width="100%",
    )

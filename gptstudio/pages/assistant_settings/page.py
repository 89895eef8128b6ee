"""The settings page (``/assistant/settings?id=N``): its cards, top to bottom."""

from __future__ import annotations

import reflex as rx

from gptstudio.components.layout import assistant_header, form_error, page
from gptstudio.pages.assistant_settings.deletion import deletion_card
from gptstudio.pages.assistant_settings.feedback import feedback_card
from gptstudio.pages.assistant_settings.profile import profile_card, welcome_card
from gptstudio.pages.assistant_settings.retrieval import retrieval_card
from gptstudio.pages.assistant_settings.rollout import rollout_card
from gptstudio.pages.assistant_settings.state import SettingsState
from gptstudio.pages.registry import add_page


@add_page(route="/assistant/settings", title="Settings · GPT Studio", on_load=SettingsState.load)
def settings_page() -> rx.Component:
    return page(
        assistant_header(),
        form_error(SettingsState.error),
        profile_card(),
        welcome_card(),
        retrieval_card(),
        rollout_card(),
        feedback_card(),
        deletion_card(),
        max_width="1100px",
    )

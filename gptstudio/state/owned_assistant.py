"""The state of pages about one of the creator's own assistants (``?id=N``)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.errors import DomainError
from gptstudio.models import Role
from gptstudio.services import assistant
from gptstudio.state.auth import AuthState


class AssistantPageState(AuthState):
    assistant_id: int = 0
    assistant_name: str = ""
    error: str = ""

    def _open_assistant(self) -> Any:
        """Resolve ``?id=`` to an assistant the creator owns; returns events when refused."""
        refused = self._guard(Role.creator)
        if refused is not None:
            return refused
        try:
            self.assistant_id = int(self.router.url.query_parameters.get("id", "0"))
            found = assistant.get_owned(actor=self._actor(), assistant_id=self.assistant_id)
        except (ValueError, DomainError):
            return [rx.toast.error("There is no such assistant."), rx.redirect("/dashboard")]
        self.assistant_name, self.error = found.name, ""
        return None

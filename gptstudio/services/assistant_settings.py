"""An assistant's settings as its creator edits them: name, description, persona (the system
prompt every conversation starts with) and retrieval (on/off, passages per answer).

The slug never changes with the name: API clients and links keep working after a rename.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import Assistant
from gptstudio.models.user import UserPublic
from gptstudio.services import audit
from gptstudio.services.access import Client
from gptstudio.services.assistant import owned_assistant

MAX_NAME = 120
MAX_DESCRIPTION = 2000
MAX_SYSTEM_PROMPT = 8000
TOP_K_RANGE = (1, 20)


@dataclass(frozen=True)
class AssistantSettings:
    id: int
    name: str
    slug: str
    description: str
    system_prompt: str
    is_published: bool
    rag_enabled: bool
    rag_top_k: int


def _settings(assistant: Assistant) -> AssistantSettings:
    return AssistantSettings(
        id=assistant.id or 0, name=assistant.name, slug=assistant.slug,
        description=assistant.description, system_prompt=assistant.system_prompt,
        is_published=assistant.is_published, rag_enabled=assistant.rag_enabled,
        rag_top_k=assistant.rag_top_k,
    )  # fmt: skip


def get_settings_of(*, actor: UserPublic, assistant_id: int) -> AssistantSettings:
    """The editable settings of one of the actor's assistants."""
    with session_scope() as session:
        return _settings(owned_assistant(session, actor=actor, assistant_id=assistant_id))


def update_profile(
    *,
    actor: UserPublic,
    assistant_id: int,
    name: str,
    description: str,
    system_prompt: str,
    client: Client = Client(),
) -> AssistantSettings:
    """Rename, describe and set the persona; every field is checked before anything changes."""
    name = " ".join(name.split())
    description, system_prompt = description.strip(), system_prompt.strip()
    if not 2 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"Give the assistant a name of 2 to {MAX_NAME} characters.")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"The description must be at most {MAX_DESCRIPTION} characters "
            f"(it has {len(description)})."
        )
    if len(system_prompt) > MAX_SYSTEM_PROMPT:
        raise InvalidInput(
            f"The persona must be at most {MAX_SYSTEM_PROMPT} characters "
            f"(it has {len(system_prompt)})."
        )
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        persona_changed = assistant.system_prompt != system_prompt
        assistant.name, assistant.description = name, description
        assistant.system_prompt, assistant.updated_at = system_prompt, utcnow()
        if persona_changed:
            audit.record(
                session, action="assistant.persona_changed", actor_id=actor.id,
                target=f"assistant:{assistant_id}", ip=client.ip, user_agent=client.user_agent,
                detail={"length": len(system_prompt)},
            )  # fmt: skip
        return _settings(assistant)


def update_retrieval(
    *, actor: UserPublic, assistant_id: int, enabled: bool, top_k: int
) -> AssistantSettings:
    """Turn retrieval on or off and choose how many passages each answer may cite."""
    low, high = TOP_K_RANGE
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not low <= top_k <= high:
        raise InvalidInput(f"Passages per answer must be a whole number from {low} to {high}.")
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.rag_enabled, assistant.rag_top_k = bool(enabled), top_k
        assistant.updated_at = utcnow()
        return _settings(assistant)

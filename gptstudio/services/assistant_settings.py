"""An assistant's settings as its creator edits them: name, description, persona (the system
prompt every conversation starts with), the chat's welcome message and conversation starters,
and retrieval (on/off, passages per answer, whether subscribers may open cited originals).
Turning retrieval on queues the sources index build when there is none (or it is outdated).

The slug never changes with the name: API clients and links keep working after a rename.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidInput
from gptstudio.models import Assistant
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, retrieval
from gptstudio.services.access import Client
from gptstudio.services.assistant import owned_assistant

MAX_NAME = 120
MAX_DESCRIPTION = 2000
MAX_SYSTEM_PROMPT = 8000
TOP_K_RANGE = (1, 20)
MAX_WELCOME = 2000
MAX_STARTERS = 6
MAX_STARTER = 200


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
    rag_originals_for_subscribers: bool = False
    welcome_message: str = ""
    conversation_starters: tuple[str, ...] = ()


def _settings(assistant: Assistant) -> AssistantSettings:
    return AssistantSettings(
        id=assistant.id or 0, name=assistant.name, slug=assistant.slug,
        description=assistant.description, system_prompt=assistant.system_prompt,
        is_published=assistant.is_published, rag_enabled=assistant.rag_enabled,
        rag_top_k=assistant.rag_top_k,
        rag_originals_for_subscribers=assistant.rag_originals_for_subscribers,
        welcome_message=assistant.welcome_message,
        conversation_starters=tuple(str(s) for s in assistant.conversation_starters),
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


def update_welcome(
    *, actor: UserPublic, assistant_id: int, welcome_message: str, starters: list[str]
) -> AssistantSettings:
    """The chat's greeting and its conversation starters (blank lines are dropped)."""
    welcome_message = welcome_message.strip()
    kept = [" ".join(s.split()) for s in starters if s.strip()]
    if len(welcome_message) > MAX_WELCOME:
        raise InvalidInput(
            f"The welcome message must be at most {MAX_WELCOME} characters "
            f"(it has {len(welcome_message)})."
        )
    if len(kept) > MAX_STARTERS:
        raise InvalidInput(f"Offer at most {MAX_STARTERS} conversation starters ({len(kept)}).")
    if any(len(s) > MAX_STARTER for s in kept):
        raise InvalidInput(f"Each conversation starter must be at most {MAX_STARTER} characters.")
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.welcome_message, assistant.conversation_starters = welcome_message, kept
        assistant.updated_at = utcnow()
        return _settings(assistant)


def update_retrieval(
    *, actor: UserPublic, assistant_id: int, enabled: bool, top_k: int,
    originals_for_subscribers: bool | None = None,
) -> AssistantSettings:  # fmt: skip
    """Turn retrieval on or off, choose how many passages each answer may cite and whether
    subscribers may open the original files of cited documents (not only the scrubbed passage).

    Turning it on queues the sources index build when there is no index, or an outdated one, and
    a dataset version to build it from (the settings page follows its progress)."""
    low, high = TOP_K_RANGE
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not low <= top_k <= high:
        raise InvalidInput(f"Passages per answer must be a whole number from {low} to {high}.")
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.rag_enabled, assistant.rag_top_k = bool(enabled), top_k
        if originals_for_subscribers is not None:
            assistant.rag_originals_for_subscribers = bool(originals_for_subscribers)
        assistant.updated_at = utcnow()
        saved = _settings(assistant)
    if saved.rag_enabled:
        status = retrieval.index_status(actor=actor, assistant_id=assistant_id)
        needed = status.state == "none" or status.outdated
        if needed and retrieval.latest_dataset(assistant_id) is not None:
            retrieval.request_build(actor=actor, assistant_id=assistant_id)
    return saved

"""Assistants: creators make and own them; subscribers see the published ones."""

from __future__ import annotations

import re
import secrets

from sqlmodel import Session, col, select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Assistant, Role
from gptstudio.models.assistant import AssistantPublic
from gptstudio.models.user import UserPublic
from gptstudio.services import creator_tier
from gptstudio.services.access import authorize


def slugify(name: str) -> str:
    """A URL-safe lower-case slug of ``name`` (letters, digits and dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "assistant"


def owned_assistant(session: Session, *, actor: UserPublic, assistant_id: int) -> Assistant:
    """The assistant, if ``actor`` owns it (or is an admin); another creator's is not found."""
    authorize(actor, Role.creator)
    assistant = session.get(Assistant, assistant_id)
    if assistant is None or (assistant.owner_id != actor.id and actor.role != Role.admin):
        raise NotFound("There is no such assistant.")
    return assistant


def owner_check(session: Session, *, actor: UserPublic, assistant_id: int, what: str) -> None:
    """For an object of an assistant (a dataset, a document): refused exactly as an unknown id
    of that object is ("There is no such dataset."), so another tenant's ids cannot be told
    from ids that do not exist."""
    try:
        owned_assistant(session, actor=actor, assistant_id=assistant_id)
    except (NotFound, PermissionDenied):
        raise NotFound(f"There is no such {what}.") from None


def get_owned(*, actor: UserPublic, assistant_id: int) -> AssistantPublic:
    """One of the actor's own assistants (admins: any)."""
    with session_scope() as session:
        return _public(owned_assistant(session, actor=actor, assistant_id=assistant_id))


def _public(assistant: Assistant) -> AssistantPublic:
    return AssistantPublic.model_validate(assistant, from_attributes=True)


def create_assistant(*, actor: UserPublic, name: str, description: str = "") -> AssistantPublic:
    """A new, unpublished assistant owned by ``actor`` (creators and admins)."""
    authorize(actor, Role.creator)
    name = " ".join(name.split())
    if not 2 <= len(name) <= 120:
        raise InvalidInput("Give the assistant a name of 2 to 120 characters.")
    if len(description) > 2000:
        raise InvalidInput("The description must be at most 2000 characters.")
    with session_scope() as session:
        creator_tier.check_new_assistant(session, user_id=actor.id)
        slug = slugify(name)
        taken = session.exec(select(Assistant.id).where(Assistant.slug == slug)).first()
        if taken is not None:
            slug = f"{slug}-{secrets.token_hex(3)}"
        assistant = Assistant(
            owner_id=actor.id, name=name, slug=slug, description=description.strip()
        )
        session.add(assistant)
        session.flush()
        return _public(assistant)


def list_owned(*, actor: UserPublic) -> list[AssistantPublic]:
    """The assistants ``actor`` owns, newest first (creators and admins)."""
    authorize(actor, Role.creator)
    with session_scope() as session:
        rows = session.exec(
            select(Assistant)
            .where(Assistant.owner_id == actor.id)
            .order_by(col(Assistant.created_at).desc(), col(Assistant.id).desc())
        ).all()
        return [_public(a) for a in rows]


def list_available(*, actor: UserPublic) -> list[AssistantPublic]:
    """The published assistants any signed-in user can chat with, by name."""
    authorize(actor, Role.subscriber, Role.creator)
    with session_scope() as session:
        rows = session.exec(
            select(Assistant).where(col(Assistant.is_published)).order_by(col(Assistant.name))
        ).all()
        return [_public(a) for a in rows]

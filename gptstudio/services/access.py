"""Access: who is acting (``UserPublic``), from where (:class:`Client`), and the one role check.

Every service takes the acting user (``actor``) and calls :func:`authorize`; this is the one place
where roles are checked, for pages, Reflex events and HTTP routes alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptstudio.errors import PermissionDenied
from gptstudio.models import Role, User
from gptstudio.models.user import UserPublic


@dataclass(frozen=True)
class Client:
    """Where a request came from, for sessions and the audit log."""

    ip: str = ""
    user_agent: str = ""


def public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def authorize(actor: UserPublic, *roles: Role) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` has one of ``roles`` (admins pass all)."""
    if actor.role == Role.admin or actor.role in roles:
        return
    needed = " or ".join(role.value for role in roles)
    raise PermissionDenied(f"This needs a {needed} account; you are signed in as a {actor.role}.")

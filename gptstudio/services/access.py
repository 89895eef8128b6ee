"""Access: who is acting (``UserPublic``), from where (:class:`Client`), and the one role check.

Every service takes the acting user (``actor``) and calls :func:`authorize`; this is the one place
where roles are checked, for pages, Reflex events and HTTP routes alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

from gptstudio.errors import PermissionDenied
from gptstudio.models import Role, User
from gptstudio.models.user import UserPublic
from gptstudio.settings import get_settings


@dataclass(frozen=True)
class Client:
    """Where a request came from, for sessions and the audit log."""

    ip: str = ""
    user_agent: str = ""


def _trusted(address: str) -> bool:
    try:
        parsed = ip_address(address.strip())
    except ValueError:
        return False
    return any(parsed in network for network in get_settings().trusted_proxy_networks)


def client_address(*, peer: str, forwarded_for: str) -> str:
    """The client's address: the peer's, unless the peer is a configured proxy
    (``GPTSTUDIO_TRUSTED_PROXIES``); then the right-most ``X-Forwarded-For`` hop that is not a
    proxy (hops to its left are whatever the client wrote). Lockout, the audit log and the
    widget's limits all use this, so a client cannot choose its own address."""
    if not _trusted(peer):
        return peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        try:
            ip_address(hop)
        except ValueError:
            return peer  # a mangled header: believe no hop of it
        if not _trusted(hop):
            return hop
    return peer


def public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def authorize(actor: UserPublic, *roles: Role) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` has one of ``roles`` (admins pass all)."""
    if actor.role == Role.admin or actor.role in roles:
        return
    needed = " or ".join(role.value for role in roles)
    raise PermissionDenied(f"This needs a {needed} account; you are signed in as a {actor.role}.")

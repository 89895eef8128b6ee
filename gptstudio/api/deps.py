"""FastAPI dependencies: the API-key user for a scope (RBAC for HTTP routes goes through here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request

from gptstudio.models.user import UserPublic
from gptstudio.services import api_key


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def api_user(scope: str) -> Callable[[Request], Awaitable[UserPublic]]:
    """A dependency resolving ``Authorization: Bearer <key>`` to its user, if it has ``scope``."""

    async def dependency(request: Request) -> UserPublic:
        raw = bearer(request)
        known = api_key.authenticate_cached(raw_key=raw, scope=scope)  # no I/O: on the loop
        if known is not None:
            return known
        return await asyncio.to_thread(api_key.authenticate, raw_key=raw, scope=scope)

    return dependency

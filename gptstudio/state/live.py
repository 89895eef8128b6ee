"""Following work that runs on the queue: a page refreshes from the database once a second
while something it shows is still pending, then stops."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Followed(Protocol):
    """A page state that can reload itself and say whether anything is still pending."""

    watching: bool

    def _refresh(self) -> None: ...
    def _pending(self) -> bool: ...
    async def __aenter__(self) -> object: ...
    async def __aexit__(self, *exc: object) -> None: ...


async def follow(state: Followed, *, seconds: float) -> None:
    """Refresh ``state`` every second until nothing is pending or ``seconds`` pass; one
    follower per state at a time (a second call returns at once)."""
    async with state:
        if state.watching:
            return
        state.watching = True
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            async with state:
                state._refresh()
                if not state._pending():
                    return
    finally:
        async with state:
            state.watching = False

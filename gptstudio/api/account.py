"""The signed-in user's own data over HTTP: ``GET /api/account/export`` streams every piece of
it as one zip archive (the browser's session cookie: an API key, made for chat, does not open it).
Deleting the account happens on the account page, which asks for the password again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gptstudio.services import access, account, data_export

router = APIRouter(prefix="/api/account")


@router.get("/export", response_class=StreamingResponse)
async def export_data(request: Request) -> StreamingResponse:
    """All of the user's data as a zip archive, written as it is sent (audited)."""
    token = request.cookies.get(account.SESSION_COOKIE, "")
    user = await asyncio.to_thread(account.user_for_session, token=token)
    client = access.Client(
        ip=access.client_address(
            peer=request.client.host if request.client else "",
            forwarded_for=request.headers.get("x-forwarded-for", ""),
        ),
        user_agent=request.headers.get("user-agent", ""),
    )
    export = await asyncio.to_thread(data_export.export_account, actor=user, client=client)
    return StreamingResponse(
        _in_thread(export.chunks), media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"',
                 "Cache-Control": "no-store"},
    )  # fmt: skip


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Database reads and decryption off the event loop, one piece at a time."""
    while True:
        chunk = await asyncio.to_thread(next, chunks, None)
        if chunk is None:
            return
        if chunk:
            yield chunk

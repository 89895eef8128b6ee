"""Export bundles over HTTP: download a version's bundle, and import one.

``GET /api/model-versions/{id}/export.tar`` streams a version's finished bundle from disk to its
owner (``FileResponse``: chunked, resumable with ``Range``). ``POST /api/bundles`` takes a bundle
as the raw request body (``curl -X POST -T bundle.tar``: curl streams the file), streams it to
disk as it arrives and imports it for the signed-in creator (browser session cookie, or an API
key with ``documents:write``); the answer names the recreated assistant.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from gptstudio.api.deps import bearer
from gptstudio.models.user import UserPublic
from gptstudio.services import access, account, api_key, bundle

router = APIRouter(prefix="/api")


async def _user(request: Request) -> UserPublic:
    key = bearer(request)
    if key:
        return await asyncio.to_thread(api_key.authenticate, raw_key=key, scope="documents:write")
    token = request.cookies.get(account.SESSION_COOKIE, "")
    return await asyncio.to_thread(account.user_for_session, token=token)


@router.get("/model-versions/{version_id}/export.tar")
async def download_export(version_id: int, request: Request) -> FileResponse:
    """A version's export bundle, one tar file (a download, as often as wanted)."""
    user = await _user(request)
    path = await asyncio.to_thread(bundle.export_archive, actor=user, version_id=version_id)
    return FileResponse(path, media_type="application/x-tar", filename=path.name)


@router.post("/bundles", status_code=201)
async def import_bundle(request: Request) -> dict[str, Any]:
    """Import the bundle in the request body; 201 with the new assistant's id and slug."""
    user = await _user(request)
    upload = bundle.BundleUpload()
    try:
        async for chunk in request.stream():
            await asyncio.to_thread(upload.write, chunk)
        archive = upload.finish()
        client = access.Client(
            ip=access.client_address(
                peer=request.client.host if request.client else "",
                forwarded_for=request.headers.get("x-forwarded-for", ""),
            ),
            user_agent=request.headers.get("user-agent", ""),
        )
        made = await asyncio.to_thread(
            bundle.import_bundle, actor=user, archive=archive, client=client
        )
    finally:
        upload.discard()
    return {"id": made.id, "slug": made.slug, "name": made.name}

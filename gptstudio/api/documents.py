"""Document upload over HTTP (API key, scope ``documents:write``) and dataset export.

``POST /api/assistants/{id}/documents`` takes multipart files and streams each to disk;
``GET /api/datasets/{id}/{split}.jsonl`` downloads a split for its owner (browser session
cookie, or an API key with ``documents:write``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from gptstudio.api.deps import api_user, bearer
from gptstudio.errors import InvalidInput
from gptstudio.models.user import UserPublic
from gptstudio.services import account, api_key, dataset, document

router = APIRouter(prefix="/api")


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(document.CHUNK):
        yield chunk


@router.post("/assistants/{assistant_id}/documents", status_code=201)
async def upload_documents(
    assistant_id: int,
    request: Request,
    user: Annotated[UserPublic, Depends(api_user("documents:write"))],
) -> dict[str, Any]:
    form = await request.form()
    files = [value for value in form.values() if isinstance(value, UploadFile)]
    if not files:
        raise InvalidInput("Send one or more files as multipart/form-data fields.")
    stored = []
    for upload in files:
        info = await document.store_upload(
            actor=user,
            assistant_id=assistant_id,
            filename=upload.filename or "upload",
            stream=_chunks(upload),
        )
        stored.append(
            {
                "id": info.id,
                "filename": info.filename,
                "size_bytes": info.size_bytes,
                "status": info.status,
            }
        )
    return {"object": "list", "data": stored}


async def _download_user(request: Request) -> UserPublic:
    key = bearer(request)
    if key:
        return await asyncio.to_thread(api_key.authenticate, raw_key=key, scope="documents:write")
    token = request.cookies.get(account.SESSION_COOKIE, "")
    return await asyncio.to_thread(account.user_for_session, token=token)


@router.get("/datasets/{dataset_id}/{split}.jsonl")
async def export_split(dataset_id: int, split: str, request: Request) -> FileResponse:
    user = await _download_user(request)
    path = await asyncio.to_thread(
        dataset.dataset_file, actor=user, dataset_id=dataset_id, split=split
    )
    return FileResponse(
        path, media_type="application/jsonl", filename=f"dataset-{dataset_id}-{split}.jsonl"
    )


@router.get("/sources/{document_id}")
async def open_source(document_id: int, request: Request) -> FileResponse:
    """The document a citation points at (session cookie); PDFs inline, so ``#page=N`` works."""
    token = request.cookies.get(account.SESSION_COOKIE, "")
    user = await asyncio.to_thread(account.user_for_session, token=token)
    source = await asyncio.to_thread(document.cited_source, actor=user, document_id=document_id)
    return FileResponse(
        source.path, media_type=source.media_type, filename=source.filename,
        content_disposition_type="inline" if source.inline else "attachment",
    )  # fmt: skip

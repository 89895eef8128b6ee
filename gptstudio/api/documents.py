"""Document upload over HTTP (API key, scope ``documents:write``), dataset export, and the
sources citations open.

``POST /api/assistants/{id}/documents`` takes multipart files and streams each to disk;
``GET /api/datasets/{id}/{split}.jsonl`` downloads a split for its owner (browser session
cookie, or an API key with ``documents:write``). ``GET /api/sources/{id}`` shows a cited
document's scrubbed passages in context; ``GET /api/sources/{id}/original`` sends the original
upload to its owner, and to subscribers only where the creator allows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.datastructures import UploadFile

from gptstudio.api.deps import api_user, bearer
from gptstudio.errors import InvalidInput
from gptstudio.models.user import UserPublic
from gptstudio.services import account, api_key, dataset, document, retrieval

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


async def _session_user(request: Request) -> UserPublic:
    token = request.cookies.get(account.SESSION_COOKIE, "")
    return await asyncio.to_thread(account.user_for_session, token=token)


@router.get("/sources/{document_id}")
async def open_source(document_id: int, request: Request, at: int | None = None) -> HTMLResponse:
    """A citation's source (session cookie): the document's scrubbed passages in order, the one
    starting at character ``at`` marked ``#cited``, and a link to the original where the viewer
    may open it."""
    user = await _session_user(request)
    view = await asyncio.to_thread(retrieval.source_in_context, actor=user, document_id=document_id)
    return HTMLResponse(_source_page(view, at), headers={"Cache-Control": "no-store"})


@router.get("/sources/{document_id}/original")
async def open_original(document_id: int, request: Request) -> FileResponse:
    """The original upload behind a citation (its owner; subscribers where the creator allows);
    PDFs inline, so ``#page=N`` works."""
    user = await _session_user(request)
    source = await asyncio.to_thread(document.cited_source, actor=user, document_id=document_id)
    return FileResponse(
        source.path, media_type=source.media_type, filename=source.filename,
        content_disposition_type="inline" if source.inline else "attachment",
    )  # fmt: skip


SOURCE_STYLE = """
body { font: 16px/1.55 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #1c2024; }
h1 { font-size: 1.3rem; } .where { color: #60646c; font-size: .85rem; margin: 0 0 .25rem; }
section { border-left: 3px solid #e0e1e6; padding: .25rem .9rem; margin: 1rem 0; }
section.cited { border-color: #3e63dd; background: #edf2fe; }
p.text { white-space: pre-wrap; margin: 0; } .note { color: #60646c; font-size: .9rem; }
"""


def _source_page(view: retrieval.SourceView, at: int | None) -> str:
    """The HTML of :func:`open_source` (every text escaped)."""
    title = escape(view.filename)
    marked = next((p.n for p in view.passages if p.char_start == at), None)
    sections = []
    for passage in view.passages:
        where = escape(passage.label.split(", ", 1)[1]) if ", " in passage.label else ""
        opening = "<section id=cited class=cited>" if passage.n == marked else "<section>"
        heading = f"<p class=where>{where}</p>" if where else ""
        sections.append(f"{opening}{heading}<p class=text>{escape(passage.text)}</p></section>")
    if not sections:
        sections.append("<p class=note>This document is not in the sources index.</p>")
    original = (
        f'<p><a href="/api/sources/{view.document_id}/original">Open the original file</a></p>'
        if view.original
        else ""
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
        f'<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<style>{SOURCE_STYLE}</style></head><body><h1>{title}</h1>"
        "<p class=note>The passages the assistant can cite from this document, with personal "
        "data replaced by placeholders such as [EMAIL].</p>"
        f"{original}{''.join(sections)}</body></html>"
    )

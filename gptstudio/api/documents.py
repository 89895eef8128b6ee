"""Document upload over HTTP (API key, scope ``documents:write``), dataset export, and the
sources citations open.

``POST /api/assistants/{id}/documents`` takes multipart files (any field names, several under one
name too) and streams each to disk as the body arrives: the body is parsed chunk by chunk, never
spooled, so a file over the upload limit is refused after reading the limit, not the whole body;
``GET /api/datasets/{id}/{split}.jsonl`` downloads a split for its owner (browser session
cookie, or an API key with ``documents:write``); a version's export bundle is
:mod:`gptstudio.api.bundles`. ``GET /api/sources/{id}`` shows a cited
document's scrubbed passages in context; ``GET /api/sources/{id}/original`` sends the original
upload to its owner, and to subscribers only where the creator allows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from html import escape
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from gptstudio.api.deps import api_user, bearer
from gptstudio.errors import InvalidInput
from gptstudio.models.user import UserPublic
from gptstudio.services import account, api_key, dataset, document, retrieval

router = APIRouter(prefix="/api")


FIELD_LIMIT = 64 * 1024  # a form field that is not a file: nothing this endpoint reads


class _Multipart:
    """python-multipart's push parser turned into a list of events per fed chunk:
    ``("file", filename)`` when a file part begins, ``("data", bytes)``, ``("end", "")``.
    Parts without a filename are skipped (and refused past :data:`FIELD_LIMIT`)."""

    def __init__(self, content_type: str) -> None:
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInput("Send one or more files as multipart/form-data fields.")
        self.events: list[tuple[str, Any]] = []
        self.header, self.value, self.disposition = b"", b"", b""
        self.in_file, self.field_bytes = False, 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": lambda d, a, b: self._add("header", d[a:b]),
                "on_header_value": lambda d, a, b: self._add("value", d[a:b]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> list[tuple[str, Any]]:
        self.events = []
        try:
            self.parser.write(chunk)
        except FormParserError:
            raise InvalidInput("The multipart body is malformed.") from None
        return self.events

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + data)

    def _begin(self) -> None:
        self.header, self.value, self.disposition, self.in_file = b"", b"", b"", False

    def _header_end(self) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition = self.value
        self.header, self.value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self.disposition)
        filename = params.get(b"filename")
        self.in_file = bool(filename)  # a form's empty file input sends filename=""
        if filename:
            self.events.append(("file", filename.decode("utf-8", "replace")))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.events.append(("data", data[start:end]))
            return
        self.field_bytes += end - start
        if self.field_bytes > FIELD_LIMIT:
            raise InvalidInput("Only files are read here; send each as a multipart file field.")

    def _end(self) -> None:
        if self.in_file:
            self.events.append(("end", ""))
        self.in_file = False


@router.post("/assistants/{assistant_id}/documents", status_code=201)
async def upload_documents(
    assistant_id: int,
    request: Request,
    user: Annotated[UserPublic, Depends(api_user("documents:write"))],
) -> dict[str, Any]:
    body = _Multipart(request.headers.get("content-type", ""))
    stored: list[document.DocumentInfo] = []
    writer: document.UploadWriter | None = None
    try:
        async for chunk in request.stream():
            for event, value in body.feed(chunk):
                if event == "file":
                    writer = document.UploadWriter(
                        actor=user, assistant_id=assistant_id, filename=value
                    )
                elif event == "data" and writer is not None:
                    writer.write(value)  # refuses past the limit: the rest is never read
                elif event == "end" and writer is not None:
                    stored.append(writer.finish())
                    writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:  # the body ended inside a file
        writer.abort()
        raise InvalidInput("The multipart body ended before its last file did.")
    if not stored:
        raise InvalidInput("Send one or more files as multipart/form-data fields.")
    return {
        "object": "list",
        "data": [
            {"id": i.id, "filename": i.filename, "size_bytes": i.size_bytes, "status": i.status}
            for i in stored
        ],
    }


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
async def open_original(document_id: int, request: Request) -> StreamingResponse:
    """The original upload behind a citation (its owner; subscribers where the creator allows),
    decrypted as it is sent; PDFs inline, so ``#page=N`` works. The first segment is decrypted
    before the answer starts, so a missing key or a damaged file is a clear error, not a cut
    download."""
    user = await _session_user(request)
    source = await asyncio.to_thread(document.cited_source, actor=user, document_id=document_id)
    chunks = source.content()
    first = await asyncio.to_thread(next, chunks, b"")
    disposition = "inline" if source.inline else "attachment"
    return StreamingResponse(
        _prepend(first, chunks), media_type=source.media_type,
        headers={"Content-Disposition": f"{disposition}; filename*=utf-8''{quote(source.filename)}",
                 "Cache-Control": "no-store"},
    )  # fmt: skip


async def _prepend(first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    while chunk := await asyncio.to_thread(next, rest, b""):
        yield chunk


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

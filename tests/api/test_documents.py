"""Document upload over HTTP with an API key, and dataset export for the owner only."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gptstudio.api import create_api
from gptstudio.models import Role
from gptstudio.services import account, api_key, assistant, dataset, document
from gptstudio.settings import get_settings
from tests.services.docs import BEES_MD, TAX_MD

PASSWORD = "correct horse battery"


@pytest.fixture
def setup(db: str, run_tasks_inline: None) -> tuple[TestClient, account.UserPublic, int, str]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    raw, _ = api_key.create_key(actor=cy, name="sync", scopes=["documents:write"])
    return TestClient(create_api()), cy, bees, raw


def test_upload_with_an_api_key_then_export(
    setup: tuple[TestClient, account.UserPublic, int, str],
) -> None:
    client, cy, bees, raw = setup
    response = client.post(
        f"/api/assistants/{bees}/documents",
        headers={"Authorization": f"Bearer {raw}"},
        files=[("file", ("bees.md", BEES_MD.encode())), ("file2", ("tax.md", TAX_MD.encode()))],
    )
    assert response.status_code == 201, response.text
    assert [d["filename"] for d in response.json()["data"]] == ["bees.md", "tax.md"]
    dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())
    version = dataset.snapshot(actor=cy, assistant_id=bees)
    token = account.login(email="cy@example.com", password=PASSWORD).token
    export = client.get(
        f"/api/datasets/{version.id}/train.jsonl", cookies={"gptstudio_session": token}
    )
    assert export.status_code == 200
    assert export.text.splitlines()[0].startswith('{"id":')
    stranger = client.get(f"/api/datasets/{version.id}/train.jsonl")
    assert stranger.status_code == 401


def test_upload_refusals(setup: tuple[TestClient, account.UserPublic, int, str]) -> None:
    client, cy, bees, raw = setup
    chat_key, _ = api_key.create_key(actor=cy, name="chat", scopes=["chat"])
    wrong_scope = client.post(
        f"/api/assistants/{bees}/documents",
        headers={"Authorization": f"Bearer {chat_key}"},
        files=[("file", ("a.md", b"hello"))],
    )
    assert wrong_scope.status_code == 403
    other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    other_key, _ = api_key.create_key(actor=other, name="x", scopes=["documents:write"])
    idor = client.post(
        f"/api/assistants/{bees}/documents",
        headers={"Authorization": f"Bearer {other_key}"},
        files=[("file", ("a.md", b"hello"))],
    )
    assert idor.status_code == 404
    unsafe = client.post(
        f"/api/assistants/{bees}/documents",
        headers={"Authorization": f"Bearer {raw}"},
        files=[("file", ("../../evil.md", b"hello"))],
    )
    assert unsafe.status_code == 422 and "outside its folder" in unsafe.json()["error"]["message"]
    empty = client.post(
        f"/api/assistants/{bees}/documents", headers={"Authorization": f"Bearer {raw}"}
    )
    assert empty.status_code == 422


def test_citations_open_the_scrubbed_passage_and_the_original_only_where_allowed(
    setup: tuple[TestClient, account.UserPublic, int, str],
) -> None:
    """A citation opens the scrubbed passage in its document's context; the original upload
    (before PII scrubbing) is the owner's, and subscribers' only when the creator opts in."""
    import numpy as np

    from gptstudio.db import session_scope
    from gptstudio.models import Assistant
    from gptstudio.services import retrieval
    from tests.curation.builders import make_pdf
    from tests.services.test_document import upload

    client, cy, bees, _ = setup
    pdf = upload(cy, bees, "manual.pdf", make_pdf([["Call Ann at ann@example.com."] * 3] * 2))
    page = upload(cy, bees, "notes.html", b"<html><body><p>" + b"Bees dance. " * 30 + b"</p>")
    account.register(email="sue@example.com", password=PASSWORD)
    sue = {"gptstudio_session": account.login(email="sue@example.com", password=PASSWORD).token}
    owner = {"gptstudio_session": account.login(email="cy@example.com", password=PASSWORD).token}
    original = f"/api/sources/{pdf.id}/original"

    # Not published with retrieval on: only the owner may open it; others are told nothing.
    assert client.get(f"/api/sources/{pdf.id}", cookies=sue).status_code == 404
    assert client.get(original, cookies=sue).status_code == 404
    assert client.get(original, cookies=owner).status_code == 200
    assert client.get(f"/api/sources/{pdf.id}").status_code == 401
    assert client.get(original).status_code == 401

    with session_scope() as session:
        row = session.get(Assistant, bees)
        assert row is not None
        row.is_published, row.rag_enabled = True, True
    # Published with retrieval on: what its index can cite is open to anyone signed in, as
    # scrubbed passages, and nothing else (here the index cites the PDF and the page).
    notes = upload(cy, bees, "notes.md", b"# Notes\n\nPrivate notes on the apiary.\n")
    assert client.get(f"/api/sources/{pdf.id}", cookies=sue).status_code == 404  # no index yet
    cited = [
        {"document_id": pdf.id, "filename": "manual.pdf", "page": 2, "char_start": 40,
         "char_end": 80, "text": "Call Ann at [EMAIL] <b>now</b>."},
        {"document_id": pdf.id, "filename": "manual.pdf", "page": 1, "char_start": 0,
         "char_end": 40, "text": "Page one."},
        {"document_id": page.id, "filename": "notes.html", "text": "Bees dance."},
    ]  # fmt: skip
    retrieval.write_index(
        retrieval.index_path(bees), vectors=np.eye(3, dtype=np.float32), rows=cited,
        manifest={},
    )  # fmt: skip
    assert client.get(f"/api/sources/{notes.id}", cookies=sue).status_code == 404
    opened = client.get(f"/api/sources/{notes.id}/original", cookies=owner)
    # stored encrypted, sent decrypted (issue 16): the bytes uploaded, as an attachment
    assert (
        opened.status_code == 200 and opened.content == b"# Notes\n\nPrivate notes on the apiary.\n"
    )
    assert opened.headers["content-disposition"].startswith("attachment;")
    shown = client.get(f"/api/sources/{pdf.id}?at=40", cookies=sue)
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
    html = shown.text
    assert "Call Ann at [EMAIL] &lt;b&gt;now&lt;/b&gt;." in html and "ann@example.com" not in html
    assert html.index("Page one.") < html.index("id=cited") < html.index("Call Ann")
    assert "page 2" in html and "Open the original file" not in html
    assert client.get(original, cookies=sue).status_code == 404  # the original stays private
    assert "Open the original file" in client.get(f"/api/sources/{pdf.id}", cookies=owner).text

    with session_scope() as session:  # the creator lets subscribers open the originals
        row = session.get(Assistant, bees)
        assert row is not None
        row.rag_originals_for_subscribers = True
    assert "Open the original file" in client.get(f"/api/sources/{pdf.id}", cookies=sue).text
    opened = client.get(original, cookies=sue)
    assert opened.status_code == 200 and opened.content.startswith(b"%PDF")
    assert opened.headers["content-type"] == "application/pdf"
    assert opened.headers["content-disposition"].startswith("inline")
    html_file = client.get(f"/api/sources/{page.id}/original", cookies=sue)
    assert html_file.headers["content-disposition"].startswith("attachment")  # never runs here
    assert html_file.headers["content-type"] == "application/octet-stream"
    assert client.get(f"/api/sources/{notes.id}/original", cookies=sue).status_code == 404
    assert client.get("/api/sources/999999", cookies=sue).status_code == 404


def test_several_files_under_one_field_name_are_all_stored(
    setup: tuple[TestClient, account.UserPublic, int, str],
) -> None:
    client, cy, bees, raw = setup
    response = client.post(
        f"/api/assistants/{bees}/documents",
        headers={"Authorization": f"Bearer {raw}"},
        files=[
            ("files", ("bees.md", BEES_MD.encode())),
            ("files", ("tax.md", TAX_MD.encode())),
            ("files", ("notes.md", b"# Notes\n\nHive notes.\n")),
        ],
    )
    assert response.status_code == 201, response.text
    names = [d["filename"] for d in response.json()["data"]]
    assert names == ["bees.md", "tax.md", "notes.md"]
    listed = document.list_documents(actor=cy, assistant_id=bees)
    assert sorted(d.filename for d in listed) == sorted(names)
    assert all(d.size_bytes > 0 for d in listed)


def _huge_multipart(total: int, boundary: str) -> Iterator[bytes]:
    """A multipart body of one file of ``total`` bytes, generated lazily (never in memory)."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    block = b"a" * (1024 * 1024)
    for _ in range(total // len(block)):
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def test_an_upload_over_the_limit_stops_reading_at_the_limit(
    setup: tuple[TestClient, account.UserPublic, int, str],
    settings_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A 1 GiB body against a 2 MB limit: 413 after about 2 MB read, nothing spooled to the temp
    folder and nothing left in the documents folder."""
    _, cy, bees, raw = setup
    settings_env.setenv("GPTSTUDIO_MAX_UPLOAD_MB", "2")
    get_settings.cache_clear()
    spool = tmp_path / "spool"
    spool.mkdir()
    settings_env.setattr(tempfile, "tempdir", str(spool))
    boundary = "gptstudio-test-boundary"
    body = _huge_multipart(1024**3, boundary)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(body, None)
        read += len(chunk or b"")
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": f"/api/assistants/{bees}/documents", "raw_path": b"",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {raw}".encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"content-length", str(1024**3 + 200).encode()),
        ],
    }  # fmt: skip
    asyncio.run(create_api()(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    message = json.loads(b"".join(m.get("body", b"") for m in sent if "body" in m))
    assert "2 MB upload limit" in message["error"]["message"]
    assert read < 4 * 1024 * 1024, f"read {read} bytes of a 1 GiB body"
    assert list(spool.iterdir()) == []
    folder = get_settings().artifacts_dir / "documents" / str(bees)
    assert not folder.exists() or list(folder.iterdir()) == []
    assert document.list_documents(actor=cy, assistant_id=bees) == []

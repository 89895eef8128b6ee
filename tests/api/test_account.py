"""The data export (issue 16): ``GET /api/account/export`` streams the signed-in user's data as
one zip; what it holds, what it never holds (secrets, hashes, other people's data), that it is
audited, and that it is written as it is sent (memory stays flat for a large upload)."""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
import zipfile
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.models import AuditEvent, Conversation, Invoice, Message, Role, UsageEvent
from gptstudio.services import account, api_key, assistant, data_export
from tests.services.docs import BEES_MD
from tests.services.test_document import upload

PASSWORD = "correct horse battery"


@pytest.fixture
def client(db: str, run_tasks_inline: None) -> Iterator[TestClient]:
    from gptstudio.api import create_api

    with TestClient(create_api(), base_url="http://studio.test") as test_client:
        yield test_client


def cookie(email: str) -> dict[str, str]:
    return {account.SESSION_COOKIE: account.login(email=email, password=PASSWORD).token}


def test_the_archive_holds_the_users_data_and_no_secret(client: TestClient) -> None:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    bees = assistant.create_assistant(actor=cy, name="Bees")
    stored = upload(cy, bees.id, "bees.md", BEES_MD.encode())
    raw_key, _ = api_key.create_key(actor=cy, name="laptop", scopes=["chat"])
    with session_scope() as session:
        mine = Conversation(user_id=cy.id, assistant_id=bees.id, title="Swarming")
        theirs = Conversation(user_id=sue.id, assistant_id=bees.id, title="Sue's question")
        session.add_all([mine, theirs])
        session.flush()
        session.add(
            Message(conversation_id=mine.id or 0, role="user", content="When do bees swarm?")
        )
        session.add(Message(conversation_id=theirs.id or 0, role="user", content="Sue asks this"))
        session.add(
            UsageEvent(user_id=cy.id, assistant_id=bees.id, input_tokens=7, output_tokens=9)
        )
        session.add(Invoice(stripe_invoice_id="in_export_1", user_id=cy.id, amount_paid_cents=500))
    assert client.get("/api/account/export").status_code == 401

    answer = client.get("/api/account/export", cookies=cookie("cy@example.com"))

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert answer.headers["content-disposition"].startswith('attachment; filename="gptstudio-data-')
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.testzip() is None
    names = set(archive.namelist())
    slug = f"assistants/{bees.slug}"
    assert {"README.txt", "profile.json", "api_keys.json", "security.json", "billing.json",
            "audit.json", "usage.csv", f"{slug}/settings.json",
            f"{slug}/documents.json"} <= names  # fmt: skip
    profile = json.loads(archive.read("profile.json"))
    assert profile["email"] == "cy@example.com" and profile["role"] == "creator"
    (conversation,) = [n for n in names if n.startswith("conversations/")]
    held = json.loads(archive.read(conversation))
    assert held["title"] == "Swarming"
    assert [m["content"] for m in held["messages"]] == ["When do bees swarm?"]
    (key,) = json.loads(archive.read("api_keys.json"))
    assert key["name"] == "laptop" and key["prefix"] == raw_key[:10] and "key_hash" not in key
    usage = list(csv.DictReader(io.StringIO(archive.read("usage.csv").decode())))
    assert [(u["input_tokens"], u["output_tokens"]) for u in usage] == [("7", "9")]
    assert json.loads(archive.read("billing.json"))["invoices"][0]["amount_paid_cents"] == 500
    (listed,) = json.loads(archive.read(f"{slug}/documents.json"))
    assert listed["filename"] == "bees.md" and listed["status"] == "parsed"
    # the original as uploaded: decrypted for its owner
    assert archive.read(f"{slug}/documents/{stored.id}-bees.md") == BEES_MD.encode()
    actions = [e["action"] for e in json.loads(archive.read("audit.json"))]
    assert "api_key.created" in actions
    everything = b"".join(archive.read(n) for n in names)
    for secret in (raw_key, "argon2", "Sue asks this", "sue@example.com"):
        assert secret.encode() not in everything
    with session_scope() as session:
        exported = session.exec(
            select(AuditEvent).where(AuditEvent.action == "account.exported")
        ).one()
        assert exported.actor_id == cy.id


def test_the_archive_is_streamed_not_built_in_memory(db: str, run_tasks_inline: None) -> None:
    """A 24 MB upload goes into the archive while Python's allocations peak far below its size
    (each piece is written to the response as it is made)."""
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees")
    size = 24 * 1024 * 1024
    upload(cy, bees.id, "big.txt", os.urandom(size))
    export = data_export.export_account(actor=cy)
    tracemalloc.start()
    try:
        sent = sum(len(chunk) for chunk in export.chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent > size  # random bytes do not compress: all of it went through
    assert peak < size / 8, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB document"

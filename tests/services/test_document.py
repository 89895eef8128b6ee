"""Uploads: streamed to disk within the size limit and quota, parsed on the queue (what a parse
finds: tests/jobs/test_documents.py), per-file status; another creator's assistant is out of
reach."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Role
from gptstudio.services import account, assistant, document
from gptstudio.settings import get_settings
from tests.services.docs import BEES_MD

PASSWORD = "correct horse battery"


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def upload(
    actor: account.UserPublic, assistant_id: int, name: str, data: bytes
) -> document.DocumentInfo:
    return asyncio.run(
        document.store_upload(
            actor=actor, assistant_id=assistant_id, filename=name, stream=chunks(data)
        )
    )


@pytest.fixture
def creator(db: str, run_tasks_inline: None) -> tuple[account.UserPublic, int]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    return cy, assistant.create_assistant(actor=cy, name="Bees").id


def test_upload_is_stored_and_parsed(creator: tuple[account.UserPublic, int]) -> None:
    cy, bees = creator
    stored = upload(cy, bees, "bees.md", BEES_MD.encode())
    assert stored.size_bytes == len(BEES_MD.encode())
    assert Path(get_settings().artifacts_dir / "documents" / str(bees)).is_dir()
    (listed,) = document.list_documents(actor=cy, assistant_id=bees)
    assert listed.status == "parsed" and listed.error == ""
    assert listed.report["file_type"] == "markdown"
    assert listed.report["sections"] >= 3


def test_limits_refuse_and_keep_nothing(
    creator: tuple[account.UserPublic, int], settings_env: pytest.MonkeyPatch
) -> None:
    cy, bees = creator
    settings_env.setenv("GPTSTUDIO_MAX_UPLOAD_MB", "1")
    get_settings.cache_clear()
    with pytest.raises(document.UploadRefused, match="1 MB upload limit"):
        upload(cy, bees, "big.txt", b"a" * (1024 * 1024 + 1))
    settings_env.setenv("GPTSTUDIO_MAX_UPLOAD_MB", "50")
    settings_env.setenv("GPTSTUDIO_STORAGE_QUOTA_MB", "1")
    get_settings.cache_clear()
    upload(cy, bees, "half.md", b"word " * 120_000)
    with pytest.raises(document.UploadRefused, match="does not fit in your 1 MB"):
        upload(cy, bees, "more.md", b"word " * 120_000)
    assert len(document.list_documents(actor=cy, assistant_id=bees)) == 1
    folder = get_settings().artifacts_dir / "documents" / str(bees)
    assert [p.name for p in folder.iterdir()] == [
        f"{document.list_documents(actor=cy, assistant_id=bees)[0].id}-half.md"
    ]


@pytest.mark.parametrize("name", ["../../etc/passwd", "bad\x00name.txt", "/abs/path.md"])
def test_unsafe_filenames_are_refused(creator: tuple[account.UserPublic, int], name: str) -> None:
    cy, bees = creator
    with pytest.raises(InvalidInput, match=r"filename|name"):
        upload(cy, bees, name, b"hello world")


def test_other_creators_cannot_upload_or_list(creator: tuple[account.UserPublic, int]) -> None:
    cy, bees = creator
    upload(cy, bees, "bees.md", BEES_MD.encode())
    other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    with pytest.raises(NotFound):
        upload(other, bees, "mine.md", b"intrusion")
    with pytest.raises(NotFound):
        document.list_documents(actor=other, assistant_id=bees)
    (doc,) = document.list_documents(actor=cy, assistant_id=bees)
    with pytest.raises(NotFound):
        document.delete_document(actor=other, document_id=doc.id)
    with pytest.raises(PermissionDenied):
        document.list_documents(actor=sue, assistant_id=bees)
    document.delete_document(actor=cy, document_id=doc.id)
    assert document.list_documents(actor=cy, assistant_id=bees) == []


AMBIGUOUS_CSV = (
    "ticket,asked,answered,agent\n"
    "1,How often should a hive be inspected in spring?,Every seven to ten days in spring.,Ann\n"
    "2,What does a queen excluder do?,It keeps the queen out of the honey supers.,Bo\n"
)


def test_columns_only_for_tables_and_only_by_the_owner(
    creator: tuple[account.UserPublic, int],
) -> None:
    cy, bees = creator
    markdown = upload(cy, bees, "bees.md", BEES_MD.encode())
    with pytest.raises(InvalidInput, match="CSV and JSON"):
        document.choose_columns(actor=cy, document_id=markdown.id, columns={"text": "x"})
    table = upload(cy, bees, "tickets.csv", AMBIGUOUS_CSV.encode())
    other = account.register(email="eve@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        document.choose_columns(actor=other, document_id=table.id, columns={"text": "asked"})

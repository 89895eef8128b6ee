"""The retrieval index job, from a real dataset version (uploads → curation → snapshot): built from
the curated chunks the snapshot keeps, the same index as curating again for an older snapshot
without them, documents deleted since left out, and a failed build that keeps the old index.

Asking the index (through a real engine) is tested with the service, tests/services/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gptstudio.jobs.retrieval import build_index
from gptstudio.models import Role
from gptstudio.services import account, assistant, dataset, document, retrieval
from tests.curation.builders import make_pdf
from tests.services.docs import BEES_MD, TAX_MD
from tests.services.test_document import AMBIGUOUS_CSV, PASSWORD, upload
from tests.services.test_retrieval import MANUAL, curate_and_snapshot

pytestmark = pytest.mark.timeout(600)
Snapshotted = tuple[account.UserPublic, int, dict[str, int]]


@pytest.fixture
def snapshotted(db: str, run_tasks_inline: None) -> Snapshotted:
    """A snapshot (v1) of bees.md, tax.md, a two-page PDF and a table read by a chosen column."""
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    ids = {
        "bees.md": upload(cy, bees, "bees.md", BEES_MD.encode()).id,
        "tax.md": upload(cy, bees, "tax.md", TAX_MD.encode()).id,
        "manual.pdf": upload(cy, bees, "manual.pdf", make_pdf(MANUAL)).id,
        "tickets.csv": upload(cy, bees, "tickets.csv", AMBIGUOUS_CSV.encode()).id,
    }
    document.choose_columns(actor=cy, document_id=ids["tickets.csv"], columns={"text": "answered"})
    curate_and_snapshot(cy, bees)
    return cy, bees, ids


def chunks_file(assistant_id: int) -> Path:
    latest = retrieval.latest_dataset(assistant_id)
    assert latest is not None
    return Path(latest.storage_path) / dataset.CHUNKS_FILE


def test_the_snapshot_chunks_are_indexed_and_an_older_snapshot_is_curated_again(
    snapshotted: Snapshotted,
) -> None:
    cy, bees, ids = snapshotted
    built = retrieval.request_build(actor=cy, assistant_id=bees)  # runs inline on the queue
    assert built.state == "ready" and built.error == "", built
    first = retrieval.read_index(retrieval.index_path(bees))
    assert first.manifest["chunks_from"] == "snapshot" and first.manifest["reproduced"] is True
    assert first.manifest["missing_documents"] == []
    assert len(first.rows) == len(chunks_file(bees).read_text().splitlines())
    assert {row["document_id"] for row in first.rows} == set(ids.values())
    table = [row["text"] for row in first.rows if row["document_id"] == ids["tickets.csv"]]
    assert any("queen out of the honey supers" in text for text in table)  # the chosen column

    chunks_file(bees).unlink()  # a snapshot from before chunks.jsonl existed
    build_index(bees)
    again = retrieval.read_index(retrieval.index_path(bees))
    assert again.manifest["chunks_from"] == "curation run"
    assert again.manifest["reproduced"] is True and again.manifest["missing_documents"] == []
    assert again.rows == first.rows
    assert np.allclose(again.vectors, first.vectors, atol=1e-5)
    assert again.manifest["content_hash"] == first.manifest["content_hash"]


def test_deleted_documents_are_left_out_and_a_failed_build_keeps_the_old_index(
    snapshotted: Snapshotted,
) -> None:
    cy, bees, ids = snapshotted
    document.delete_document(actor=cy, document_id=ids["tax.md"])
    build_index(bees)
    index = retrieval.read_index(retrieval.index_path(bees))
    assert index.manifest["chunks_from"] == "snapshot" and index.manifest["reproduced"] is False
    assert index.manifest["missing_documents"] == [str(ids["tax.md"])]
    assert ids["tax.md"] not in {row["document_id"] for row in index.rows}

    chunks_file(bees).write_text('{"id": "broken"}\n', encoding="utf-8")
    build_index(bees)
    failed = retrieval.index_status(actor=cy, assistant_id=bees)
    assert failed.state == "ready" and failed.chunks == len(index.rows)  # the old index stays
    assert "chunks of dataset version 1 cannot be read" in failed.error
    assert "snapshot again" in failed.error

    chunks_file(bees).unlink()
    build_index(bees)
    curated = retrieval.read_index(retrieval.index_path(bees))
    assert curated.manifest["chunks_from"] == "curation run"
    assert curated.manifest["reproduced"] is False  # tax.md's chunks are gone from the run
    assert curated.manifest["missing_documents"] == [str(ids["tax.md"])]
    assert retrieval.index_status(actor=cy, assistant_id=bees).error == ""

"""The curation job, from real uploads: every step reported, every example traced to its source,
the kept chunks stored beside the result, paraphrases removed when asked."""

from __future__ import annotations

import json

import pytest

from gptstudio.models import Role
from gptstudio.services import account, assistant, dataset
from tests.services.docs import chat_jsonl
from tests.services.test_document import PASSWORD, upload


def test_run_reports_every_step_and_every_example_traces_to_its_source(
    curated: tuple[account.UserPublic, int],
) -> None:
    cy, bees = curated
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None and run.status == "done", run.error if run else None
    result = dataset.run_result(run)
    counts = result["counts"]
    assert counts["documents"] == 4
    assert counts["duplicates_dropped"]  # the copy of bees.md
    assert counts["imported_examples"] == 1
    assert counts["pii_replaced"] == {"email": 2, "phone": 2}  # one of each per bees copy
    assert sum(counts["splits"].values()) == len(result["examples"]) > 3
    for example in result["examples"]:
        assert example["source"]["document_id"]
        assert example["split"] in dataset.SPLITS
    everything = json.dumps(result["examples"])
    assert "keeper@example.com" not in everything and "[EMAIL]" in everything
    assert any(c["kind"] == "exact" for c in result["clusters"])
    assert {r["filename"] for r in result["reports"].values()} >= {"bees.md", "tax.md"}


def test_the_run_keeps_its_curated_chunks_beside_its_result(
    curated: tuple[account.UserPublic, int],
) -> None:
    from gptstudio.curation.snapshot import from_chunks_jsonl

    cy, bees = curated
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None and run.status == "done", run.error if run else None
    text = dataset.run_chunks_path(run.result_path).read_text(encoding="utf-8")
    chunks = from_chunks_jsonl(text=text)
    assert len(chunks) == dataset.run_result(run)["counts"]["chunks_kept"] > 3
    assert {c.source.document_id for c in chunks} <= set(dataset.run_result(run)["reports"])
    assert "keeper@example.com" not in text and "[EMAIL]" in text  # scrubbed, as trained on
    assert any(c.source.heading_path for c in chunks)


@pytest.mark.slow
def test_semantic_dedupe_removes_paraphrases(db: str, run_tasks_inline: None) -> None:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    pairs = [
        ("How often should I check for varroa mites?", "Check for varroa every month."),
        ("How frequently should varroa mites be checked?", "Check for varroa each month."),
        ("When is honey harvested?", "Honey is harvested in late summer."),
    ]
    upload(cy, bees, "qa.jsonl", chat_jsonl(pairs))
    dataset.start_curation(
        actor=cy, assistant_id=bees, settings=dataset.CurationSettings(semantic_dedupe=True)
    )
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None and run.status == "done", run.error if run else None
    result = dataset.run_result(run)
    assert result["counts"]["duplicates_dropped"].get("semantic") == 1
    assert len(result["examples"]) == 2
    assert any(c["kind"] == "semantic" for c in result["clusters"])

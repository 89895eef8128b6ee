"""Curation runs, overrides and versioned snapshots, from real uploads through the pipeline (what
a run finds: tests/jobs/test_curation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Role
from gptstudio.services import account, assistant, dataset
from tests.services.docs import BEES_MD, TAX_MD, chat_jsonl
from tests.services.test_document import upload

PASSWORD = "correct horse battery"


@pytest.fixture
def curated(db: str, run_tasks_inline: None) -> tuple[account.UserPublic, int]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    upload(cy, bees, "bees.md", BEES_MD.encode())
    upload(cy, bees, "bees-copy.md", BEES_MD.encode())  # an exact duplicate document
    upload(cy, bees, "tax.md", TAX_MD.encode())
    upload(cy, bees, "qa.jsonl", chat_jsonl([("What eats bees?", "Varroa mites feed on them.")]))
    run = dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())
    assert run.id is not None
    return cy, bees


def test_snapshot_is_versioned_immutable_and_diffable(
    curated: tuple[account.UserPublic, int],
) -> None:
    cy, bees = curated
    first = dataset.snapshot(actor=cy, assistant_id=bees)
    assert first.version == 1 and len(first.content_hash) == 64
    folder = Path(first.storage_path)
    lines = (folder / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert {"messages", "source"} <= set(record)
    assert record["messages"][-1]["role"] == "assistant"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["content_hash"] == first.content_hash
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None  # the run's curated chunks, kept beside the splits for retrieval
    chunks = (folder / dataset.CHUNKS_FILE).read_text()
    assert chunks and chunks == dataset.run_chunks_path(run.result_path).read_text()
    with pytest.raises(InvalidInput, match="Nothing changed since version 1"):
        dataset.snapshot(actor=cy, assistant_id=bees)

    result = dataset.run_result(dataset.latest_run(actor=cy, assistant_id=bees))  # type: ignore[arg-type]
    dropped, edited = result["examples"][0]["id"], result["examples"][1]["id"]
    dataset.set_override(actor=cy, assistant_id=bees, example_id=dropped, action="drop")
    new_messages = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    dataset.set_override(
        actor=cy, assistant_id=bees, example_id=edited, action="edit", messages=new_messages
    )
    second = dataset.snapshot(actor=cy, assistant_id=bees)
    assert second.version == 2 and second.content_hash != first.content_hash
    assert (folder / "train.jsonl").read_text().splitlines() == lines  # v1 untouched
    diff = dataset.diff_versions(actor=cy, assistant_id=bees, old_version=1, new_version=2)
    assert diff["removed"] == [dropped] and diff["changed"] == [edited]
    assert second.counts["dropped_by_creator"] == 1 and second.counts["edited"] == 1


def test_keeping_a_duplicate_applies_on_the_next_run(
    curated: tuple[account.UserPublic, int],
) -> None:
    cy, bees = curated
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None
    cluster = next(c for c in dataset.run_result(run)["clusters"] if c["dropped"])
    dataset.set_override(
        actor=cy, assistant_id=bees, example_id=cluster["dropped"][0], action="keep"
    )
    dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())
    rerun = dataset.latest_run(actor=cy, assistant_id=bees)
    assert rerun is not None and rerun.id != run.id and rerun.status == "done"
    chosen = cluster["dropped"][0]
    again = next(
        c
        for c in dataset.run_result(rerun)["clusters"]
        if chosen in [m["id"] for m in c["members"]]
    )
    assert again["kept"] == [chosen]  # the creator's pick stays instead of the first member
    assert all(m["text"] for m in again["members"])


def test_bad_requests_are_refused(curated: tuple[account.UserPublic, int]) -> None:
    cy, bees = curated
    with pytest.raises(InvalidInput, match="threshold"):
        dataset.start_curation(
            actor=cy, assistant_id=bees,
            settings=dataset.CurationSettings(near_duplicate_threshold=0.1),
        )  # fmt: skip
    with pytest.raises(InvalidInput, match="Unknown personal-data"):
        dataset.start_curation(
            actor=cy, assistant_id=bees, settings=dataset.CurationSettings(pii_categories=("dna",))
        )
    with pytest.raises(InvalidInput, match="edited example needs text"):
        dataset.set_override(actor=cy, assistant_id=bees, example_id="x", action="edit")
    empty = assistant.create_assistant(actor=cy, name="Empty").id
    with pytest.raises(InvalidInput, match="No parsed document"):
        dataset.start_curation(actor=cy, assistant_id=empty, settings=dataset.CurationSettings())
    with pytest.raises(InvalidInput, match="Run the curation first"):
        dataset.snapshot(actor=cy, assistant_id=empty)
    other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):
        dataset.start_curation(actor=other, assistant_id=bees, settings=dataset.CurationSettings())
    first = dataset.snapshot(actor=cy, assistant_id=bees)
    with pytest.raises(NotFound):
        dataset.dataset_file(actor=other, dataset_id=first.id or 0, split="train")
    with pytest.raises(NotFound):
        dataset.dataset_file(actor=cy, dataset_id=first.id or 0, split="../../etc")


def test_a_snapshot_without_test_examples_warns_and_says_what_evaluation_uses(
    db: str, run_tasks_inline: None
) -> None:
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    topics = ("queens", "drones", "wax", "honey", "pollen", "propolis", "nectar", "swarms",
              "mites", "hives")  # fmt: skip
    for topic in topics:  # one document each: whole documents go to one split
        pair = (f"What do beekeepers say about {topic}?", f"They say {topic} matter to a colony.")
        upload(cy, bees, f"{topic}.jsonl", chat_jsonl([pair]))
    dataset.start_curation(actor=cy, assistant_id=bees, settings=dataset.CurationSettings())
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None and run.status == "done", run.error if run else None
    examples = dataset.run_result(run)["examples"]
    validation = [e for e in examples if e["split"] == "validation"]
    assert len(validation) == 1
    for example in examples:
        if example["split"] == "test":
            dataset.set_override(
                actor=cy, assistant_id=bees, example_id=example["id"], action="drop"
            )
    version = dataset.snapshot(actor=cy, assistant_id=bees)
    assert version.counts["splits"]["validation"] == 1 and version.counts["splits"]["test"] == 0
    (warning,) = version.counts["warnings"]
    assert "No test examples" in warning and "1 validation example " in warning
    manifest = json.loads((Path(version.storage_path) / "manifest.json").read_text())
    assert manifest["counts"]["warnings"] == [warning]

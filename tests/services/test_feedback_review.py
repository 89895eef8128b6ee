"""Feedback that improves the next version (#18 §2): thumbs-down answers and unanswered
questions become review items (scrubbed of personal data), accepted corrections enter the next
dataset version as examples "from feedback" without crossing splits with their near-duplicates,
and "Train with feedback" starts a fine-tune on that version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from gptstudio.curation.snapshot import from_chat_jsonl
from gptstudio.curation.splits import Split, find_leaks
from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Conversation, Message, Role, TrainingJob
from gptstudio.services import account, dataset, feedback, feedback_training
from tests.services.test_dataset import PASSWORD, curated  # noqa: F401  (the fixture)

Creator = tuple[account.UserPublic, int]


def _exchange(
    assistant_id: int, user_id: int, question: str, answer: str, *, role: str = "assistant",
    rating: int = 0, comment: str = "",
) -> int:  # fmt: skip
    """A subscriber's question and its answer (or failed answer), stored as the chat stores them."""
    with session_scope() as session:
        talk = Conversation(user_id=user_id, assistant_id=assistant_id)
        session.add(talk)
        session.flush()
        session.add(Message(conversation_id=talk.id or 0, role="user", content=question))
        reply = Message(conversation_id=talk.id or 0, role=role, content=answer, feedback=rating,
                        feedback_comment=comment)  # fmt: skip
        session.add(reply)
        session.flush()
        return reply.id or 0


@pytest.fixture
def sue(curated: Creator) -> account.UserPublic:  # noqa: F811
    return account.register(email="sue@example.com", password=PASSWORD)


def test_thumbs_down_and_unanswered_questions_become_scrubbed_review_items(
    curated: Creator,  # noqa: F811
    sue: account.UserPublic,
) -> None:
    cy, bees = curated
    _exchange(bees, sue.id, "When do mites peak? Mail me at sue.smith@example.org", "In spring.",
              rating=-1, comment="Wrong: late summer. Call me on +1 415 555 0199.")  # fmt: skip
    _exchange(bees, sue.id, "How do I stop swarming?", "The answer failed: engine down.",
              role=feedback.FAILED_ROLE)  # fmt: skip
    liked = _exchange(bees, sue.id, "What is a drone?", "A male bee.", rating=1)
    items = feedback.review_items(actor=cy, assistant_id=bees)
    assert [i.kind for i in items] == ["unanswered", "thumbs_down"]
    down = items[1]
    assert down.question == "When do mites peak? Mail me at [EMAIL]"
    assert down.comment == "Wrong: late summer. Call me on [PHONE]." and down.answer == "In spring."
    assert items[0].answer == "" and items[0].question == "How do I stop swarming?"
    assert all(i.id != liked for i in items)
    with session_scope() as session:  # nothing personal stored, only placeholders
        stored = " ".join(
            f"{i.question} {i.answer} {i.comment}"
            for i in session.exec(select(feedback.FeedbackItem))
        )
    assert "sue.smith" not in stored and "555 0199" not in stored
    # The subscriber takes the thumbs-down back: the open item goes.
    with session_scope() as session:
        message = session.exec(select(Message).where(Message.feedback == -1)).one()
        message.feedback = 0
    assert [i.kind for i in feedback.review_items(actor=cy, assistant_id=bees)] == ["unanswered"]


def test_only_the_owner_reviews_and_bad_corrections_are_refused(
    curated: Creator,  # noqa: F811
    sue: account.UserPublic,
) -> None:
    cy, bees = curated
    _exchange(bees, sue.id, "When do mites peak?", "In spring.", rating=-1)
    (item,) = feedback.review_items(actor=cy, assistant_id=bees)
    cleo = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    with pytest.raises(NotFound):  # another creator's item: not found, as any unknown id
        feedback.accept(actor=cleo, item_id=item.id, correction="Late summer.")
    with pytest.raises(NotFound):
        feedback.accept(actor=cy, item_id=2**40, correction="Late summer.")
    with pytest.raises(InvalidInput, match="Write the corrected answer"):
        feedback.accept(actor=cy, item_id=item.id, correction="   ")
    with pytest.raises(InvalidInput, match="at most"):
        feedback.accept(actor=cy, item_id=item.id, correction="x" * 9000)
    assert feedback.review_items(actor=cy, assistant_id=bees)[0].status == "open"
    assert feedback.dismiss(actor=cy, item_id=item.id).status == "dismissed"
    assert feedback.reopen(actor=cy, item_id=item.id).status == "open"


def _version_examples(version: dataset.Dataset) -> dict[str, tuple[Split, dict]]:  # type: ignore[type-arg]
    found = {}
    for split in Split:
        for line in (Path(version.storage_path) / f"{split.value}.jsonl").read_text().splitlines():
            record = json.loads(line)
            found[record["id"]] = (split, record)
    return found


def test_accepted_corrections_enter_the_next_version_in_their_duplicates_split(
    curated: Creator,  # noqa: F811
    sue: account.UserPublic,
) -> None:
    cy, bees = curated
    first = dataset.snapshot(actor=cy, assistant_id=bees)
    before = _version_examples(first)
    # A question that near-duplicates a held-out example (a reworded copy of its text), and one
    # that duplicates nothing.
    held_out = next(
        (r for split, r in before.values() if split != Split.TRAIN and len(r["messages"]) == 2),
        None,
    )
    assert held_out is not None, "the curated fixture has held-out examples"
    question, answer = (m["content"] for m in held_out["messages"])
    _exchange(bees, sue.id, question, "I don't know.", rating=-1, comment="It is in the guide!")
    _exchange(bees, sue.id, "Can I feed bees sugar syrup in October?", "No.", rating=-1)
    near, fresh = sorted(feedback.review_items(actor=cy, assistant_id=bees), key=lambda i: i.id)
    feedback.accept(actor=cy, item_id=near.id, correction=answer)
    feedback.accept(
        actor=cy, item_id=fresh.id,
        correction="Yes, 2:1 syrup early in October; write to help@bees.example for a recipe.",
    )  # fmt: skip
    second = dataset.snapshot(actor=cy, assistant_id=bees)
    assert second.counts["from_feedback"] == 2
    after = _version_examples(second)
    near_split, near_record = after[f"feedback-{near.id}"]
    fresh_split, fresh_record = after[f"feedback-{fresh.id}"]
    assert near_split == before[held_out["id"]][0] != Split.TRAIN  # with its duplicate
    assert fresh_split == Split.TRAIN
    assert near_record["kind"] == "feedback"  # provenance: from feedback
    assert near_record["source"] == {"document_id": f"feedback:{near.id}"}
    assert fresh_record["messages"][1]["content"].endswith("write to [EMAIL] for a recipe.")
    folder = Path(second.storage_path)
    splits = {
        split: list(from_chat_jsonl(text=(folder / f"{split.value}.jsonl").read_text()))
        for split in Split
    }
    assert [leak for leak in find_leaks(splits=splits) if leak.kind == "duplicate"] == []
    accepted = feedback.review_items(actor=cy, assistant_id=bees, status="accepted")
    assert {i.dataset_version for i in accepted} == {second.version}
    with pytest.raises(InvalidInput, match="already in dataset version"):
        feedback.reopen(actor=cy, item_id=near.id)


def test_train_with_feedback_snapshots_and_starts_a_job_on_the_new_version(
    curated: Creator,  # noqa: F811
    sue: account.UserPublic,
) -> None:
    from gptstudio.jobs.worker import huey

    cy, bees = curated
    dataset.snapshot(actor=cy, assistant_id=bees)
    with pytest.raises(InvalidInput, match="No accepted correction"):
        feedback_training.train_with_feedback(actor=cy, assistant_id=bees)
    _exchange(bees, sue.id, "When do mites peak?", "In spring.", rating=-1)
    (item,) = feedback.review_items(actor=cy, assistant_id=bees)
    feedback.accept(actor=cy, item_id=item.id, correction="Late summer, after the honey flow.")
    huey.immediate = False  # queued, not trained in this test
    job = feedback_training.train_with_feedback(actor=cy, assistant_id=bees)
    latest = dataset.list_datasets(actor=cy, assistant_id=bees)[0]
    assert latest.version == 2 and latest.counts["from_feedback"] == 1
    assert job.dataset_id == latest.id and job.status == "queued"
    with session_scope() as session:
        assert session.get(TrainingJob, job.id) is not None

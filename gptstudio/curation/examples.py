"""Training examples in chat form, each carrying the provenance of its source span."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from gptstudio.curation.hashing import stable_id


class Role(enum.StrEnum):
    """Chat roles accepted in training data."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True)
class Provenance:
    """Where an example or chunk came from: enough to show the source passage again."""

    document_id: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    row: int | None = None
    char_start: int | None = None
    """Start of the span in the parsed document's text (``None`` for imported rows)."""
    char_end: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; unset fields are left out."""
        record: dict[str, Any] = {"document_id": self.document_id}
        if self.page is not None:
            record["page"] = self.page
        if self.heading_path:
            record["heading_path"] = list(self.heading_path)
        if self.row is not None:
            record["row"] = self.row
        if self.char_start is not None and self.char_end is not None:
            record["char_start"] = self.char_start
            record["char_end"] = self.char_end
        return record


class ExampleKind(enum.StrEnum):
    """How an example was made."""

    IMPORTED = "imported"
    EXPLICIT = "explicit"
    """A question and answer written as such in a document (FAQ, Q:/A:, question headings)."""
    TEMPLATE = "template"
    """A table row through a question/answer template over several columns."""
    DEFINITION = "definition"
    HEADING = "heading"
    CLOZE = "cloze"
    GENERATED = "generated"
    FEEDBACK = "feedback"
    """From feedback: the creator's correction of an answer subscribers rated down, or of a
    question the assistant left unanswered."""


@dataclass(frozen=True)
class Example:
    """A chat-format training example.

    ``example_id`` depends on the source span, the kind and an ordinal, not on the wording, so a
    re-run that rewords an answer shows up as *changed* in :func:`snapshot.diff_examples`.
    """

    example_id: str
    messages: tuple[Message, ...]
    source: Provenance
    kind: ExampleKind

    @property
    def text(self) -> str:
        """All message contents joined, for dedupe and quality checks."""
        return "\n".join(message.content for message in self.messages)


def make_example(
    *,
    messages: tuple[Message, ...],
    source: Provenance,
    kind: ExampleKind,
    ordinal: int = 0,
) -> Example:
    """Build an example whose id is stable across runs for the same span, kind and ordinal."""
    example_id = stable_id(source.to_json(), kind.value, ordinal)
    return Example(example_id=example_id, messages=messages, source=source, kind=kind)


def question_answer(
    *, question: str, answer: str, system_prompt: str | None = None
) -> tuple[Message, ...]:
    """Messages for a single-turn question and answer, with an optional system prompt."""
    turns = (Message(Role.USER, question), Message(Role.ASSISTANT, answer))
    if system_prompt:
        return (Message(Role.SYSTEM, system_prompt), *turns)
    return turns

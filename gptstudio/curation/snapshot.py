"""Dataset snapshots: a content hash, chat-format JSONL export, the curated chunks as JSONL (what
a retrieval index is built from), and diffs between versions.

The hash covers the examples (sorted by id, so order does not matter) and the parameters that
produced them, through canonical JSON: the same examples and settings always hash the same, on
any machine. Diffs match examples by their stable ids, so a reworded answer shows as *changed*
rather than as one removal and one addition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gptstudio.curation.chunking import Chunk
from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.examples import Example, ExampleKind, Message, Provenance, Role
from gptstudio.curation.hashing import canonical_json, sha256_hex


def example_record(*, example: Example) -> dict[str, Any]:
    """The JSONL record of one example: ``{"messages": [...], "source": {...}}`` plus id and
    kind, which training ignores."""
    return {
        "id": example.example_id,
        "kind": example.kind.value,
        "messages": [{"role": m.role.value, "content": m.content} for m in example.messages],
        "source": example.source.to_json(),
    }


def to_chat_jsonl(*, examples: Iterable[Example]) -> str:
    """One chat-format JSON object per line, UTF-8 text, newline-terminated."""
    return "".join(
        json.dumps(example_record(example=example), ensure_ascii=False) + "\n"
        for example in examples
    )


def _provenance(record: Mapping[str, Any]) -> Provenance:
    return Provenance(
        document_id=str(record["document_id"]),
        page=record.get("page"),
        heading_path=tuple(record.get("heading_path", ())),
        row=record.get("row"),
        char_start=record.get("char_start"),
        char_end=record.get("char_end"),
    )


def from_chat_jsonl(*, text: str) -> tuple[Example, ...]:
    """Examples back from :func:`to_chat_jsonl` output."""
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = tuple(
                Message(Role(m["role"]), str(m["content"])) for m in record["messages"]
            )
            example = Example(
                example_id=str(record["id"]),
                messages=messages,
                source=_provenance(record["source"]),
                kind=ExampleKind(record["kind"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InvalidParameterError(
                f"Line {number} is not a dataset record: {error}."
            ) from error
        examples.append(example)
    return tuple(examples)


def chunk_record(*, chunk: Chunk) -> dict[str, Any]:
    """The JSONL record of one curated chunk: its id, text, provenance and place in its section."""
    return {
        "id": chunk.chunk_id,
        "text": chunk.text,
        "source": chunk.source.to_json(),
        "part": chunk.part,
    }


def to_chunks_jsonl(*, chunks: Iterable[Chunk]) -> str:
    """One chunk record per line, UTF-8 text, newline-terminated."""
    return "".join(
        json.dumps(chunk_record(chunk=chunk), ensure_ascii=False) + "\n" for chunk in chunks
    )


def from_chunks_jsonl(*, text: str) -> tuple[Chunk, ...]:
    """Chunks back from :func:`to_chunks_jsonl` output."""
    chunks = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            chunk = Chunk(
                chunk_id=str(record["id"]),
                text=str(record["text"]),
                source=_provenance(record["source"]),
                part=int(record["part"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InvalidParameterError(f"Line {number} is not a chunk record: {error}.") from error
        chunks.append(chunk)
    return tuple(chunks)


def dataset_hash(*, examples: Iterable[Example], parameters: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the examples, in id order, and the parameters (options dataclasses,
    enums, sets and plain JSON values are all accepted)."""
    records = sorted(
        (example_record(example=example) for example in examples), key=lambda r: r["id"]
    )
    return sha256_hex(value={"examples": records, "parameters": dict(parameters)})


@dataclass(frozen=True)
class ExampleDiff:
    """Example ids added, removed and changed between two versions, and how many are equal."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: int


def diff_examples(*, old: Sequence[Example], new: Sequence[Example]) -> ExampleDiff:
    """Compare two versions of a dataset by example id."""
    before = {
        example.example_id: canonical_json(value=example_record(example=example)) for example in old
    }
    after = {
        example.example_id: canonical_json(value=example_record(example=example)) for example in new
    }
    common = [name for name in after if name in before]
    changed = tuple(name for name in common if before[name] != after[name])
    return ExampleDiff(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=changed,
        unchanged=len(common) - len(changed),
    )


def _examples(n: int, split: str) -> str:
    return f"{n} {split} example{'' if n == 1 else 's'}"


def split_warnings(*, counts: Mapping[str, int]) -> tuple[str, ...]:
    """What a creator should know about a snapshot's held-out splits, and what training and its
    evaluation will use instead (``counts``: examples per split). Training watches the
    validation split; the evaluation (perplexity gain, the gate, base-vs-tuned answers) uses the
    test split, or the validation split when there is no test example."""
    validation, test = int(counts.get("validation", 0)), int(counts.get("test", 0))
    more = "Add documents (whole documents go to one split) for a steadier measure."
    if not validation and not test:
        return (
            "No validation or test examples: nothing held out, so training reports no eval loss "
            f"and the evaluation has nothing to measure (the gate cannot pass). {more}",
        )
    if not test:
        return (
            f"No test examples: the evaluation (perplexity gain, the gate, base-vs-tuned "
            f"answers) will use the {_examples(validation, 'validation')} instead, which "
            f"training also watches, so the gate is less independent. {more}",
        )
    if not validation:
        return (
            "No validation examples: training reports no eval loss; the evaluation uses the "
            f"{_examples(test, 'test')}. {more}",
        )
    return ()

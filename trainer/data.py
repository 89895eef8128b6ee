"""Training data: chat JSONL in, tokenised examples with assistant-only labels, packed batches out.

Input is what the curation pipeline exports, one conversation per line::

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "split": "train"}

``split`` is optional: ``train`` (default), ``validation`` (eval loss, early stopping) or ``test``
(left for :mod:`trainer.evaluate`). Other keys are ignored.

Examples are rendered with the base model's chat template and labelled -100 everywhere except
the assistant turns (their content and end-of-turn marker), so the loss teaches answers, not
prompts. Packing puts several examples in one row; ``position_ids`` restart at 0 for each
example, which transformers turns into a block-diagonal causal mask (sdpa/eager) or varlen
flash attention, so examples never attend to each other. (Only without a KV cache: the forward
pass must get ``use_cache=False``, as :func:`trainer.modeling.loss_sum` does.)

Everything here is plain Python except :func:`collate`, which builds torch tensors.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import DatasetError

IGNORE_INDEX = -100  # the label torch's cross-entropy skips
ROLES = ("system", "user", "assistant")
SPLITS = ("train", "validation", "test")
MIN_TRAIN_EXAMPLES = 4
HOLDOUT_MIN_EXAMPLES = 20  # below this, every example is needed for training

Message = dict[str, str]
Render = Callable[[list[Message], bool], str]


@dataclass(frozen=True)
class Conversation:
    """One validated chat example."""

    messages: tuple[Message, ...]
    split: str = "train"


@dataclass(frozen=True)
class Example:
    """A tokenised conversation: ``labels`` is -100 except on assistant tokens."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        """Tokens the loss is computed on (a first token has nothing before it to predict it)."""
        return sum(label != IGNORE_INDEX for label in self.labels[1:])


@dataclass(frozen=True)
class DataStats:
    """What tokenisation kept and dropped."""

    examples: int
    truncated: int
    dropped: int
    tokens: int
    target_tokens: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def dataset_hash(train: Sequence[Conversation], held_out: Sequence[Conversation]) -> str:
    """SHA-256 of the conversations a run trains and validates on, in order: a checkpoint or an
    adapter stores it, and resuming on other data is refused."""
    digest = hashlib.sha256()
    for part, conversations in (("train", train), ("eval", held_out)):
        digest.update(part.encode())
        for conversation in conversations:
            digest.update(json.dumps(conversation.messages, sort_keys=True).encode())
            digest.update(b"\n")
    return digest.hexdigest()


# --- reading -------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, with the line number in every error."""
    source = Path(path)
    if not source.is_file():
        raise DatasetError(f"dataset file {source} does not exist")
    records = []
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{source}, line {number}: not valid JSON ({error})") from error
            if not isinstance(record, dict):
                raise DatasetError(f"{source}, line {number}: expected a JSON object")
            records.append(record)
    return records


def parse_conversation(record: dict[str, Any], where: str) -> Conversation:
    """Check one record's shape; ``where`` names it in the error message."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f'{where}: needs a non-empty "messages" list')
    clean: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise DatasetError(f"{where}: message {index} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DatasetError(f"{where}: message {index} has role {role!r}; use one of {ROLES}")
        if not isinstance(content, str):
            raise DatasetError(f'{where}: message {index} needs a string "content"')
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" and m["content"].strip() for m in clean):
        raise DatasetError(f"{where}: has no non-empty assistant message to learn from")
    split = record.get("split", "train")
    if split not in SPLITS:
        raise DatasetError(f"{where}: split {split!r} is not one of {SPLITS}")
    return Conversation(tuple(clean), split)


def load_conversations(source: str | Path | Sequence[dict[str, Any]]) -> list[Conversation]:
    """Conversations from a JSONL path or from records already in memory."""
    if isinstance(source, (str, Path)):
        records, name = read_jsonl(source), str(source)
    else:
        records, name = list(source), "record"
    return [parse_conversation(r, f"{name}, example {i + 1}") for i, r in enumerate(records)]


def split_conversations(
    conversations: Sequence[Conversation], *, eval_fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """Train and eval sets: the ``validation`` split if any, else a seeded hold-out."""
    train = [c for c in conversations if c.split == "train"]
    held = [c for c in conversations if c.split == "validation"]
    if held or eval_fraction <= 0 or len(train) < HOLDOUT_MIN_EXAMPLES:
        return train, held
    order = list(range(len(train)))
    random.Random(f"holdout:{seed}").shuffle(order)  # noqa: S311 (reproducible, not secret)
    n_eval = max(1, round(len(train) * eval_fraction))
    chosen = set(order[:n_eval])
    return [c for i, c in enumerate(train) if i not in chosen], [train[i] for i in sorted(chosen)]


# --- tokenising ----------------------------------------------------------------------------


def template_renderer(tokenizer: Any) -> Render:
    """Render messages with the tokenizer's chat template; its errors become data errors."""
    from jinja2 import TemplateError

    def render(messages: list[Message], add_generation_prompt: bool) -> str:
        try:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except (TemplateError, ValueError, TypeError, KeyError) as error:
            raise DatasetError(
                f"the base model's chat template rejected a conversation ({error}); some models "
                "(e.g. Gemma) have no system role: merge it into the first user message"
            ) from error
        return str(text)

    return render


def assistant_char_spans(render: Render, messages: Sequence[Message]) -> list[tuple[int, int]]:
    """Character spans of the assistant turns in the rendered conversation.

    A turn starts where the prompt before it (with the generation prompt) ends and stops where
    the conversation up to and including it ends, so it covers the end-of-turn marker too: the
    model must learn to stop. Templates that rewrite earlier turns (e.g. dropping reasoning)
    break the prefix property; then the content itself is searched for.
    """
    full = render(list(messages), False)
    spans, cursor = [], 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(list(messages[:index]), True)) if index else 0
        end_text = render(list(messages[: index + 1]), False)
        if full.startswith(end_text) and cursor <= start < len(end_text):
            spans.append((start, len(end_text)))
        else:
            found = full.find(message["content"], cursor)
            if found < 0:
                raise DatasetError("cannot locate an assistant turn in the chat template output")
            spans.append((found, found + len(message["content"])))
        cursor = spans[-1][1]
    return spans


def tokenize_conversation(tokenizer: Any, messages: Sequence[Message]) -> Example:
    """Token ids of the templated conversation, labels only on assistant tokens."""
    render = template_renderer(tokenizer)
    text = render(list(messages), False)
    spans = assistant_char_spans(render, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index == len(spans):
            break
        span_start, span_end = spans[span_index]
        if end > start and span_start <= start < span_end:
            labels[position] = ids[position]
    return Example(tuple(ids), tuple(labels))


def tokenize_all(
    tokenizer: Any, conversations: Iterable[Conversation], *, max_length: int
) -> tuple[list[Example], DataStats]:
    """Tokenise, truncate to ``max_length`` and drop examples left with no assistant token."""
    kept: list[Example] = []
    truncated = dropped = 0
    for conversation in conversations:
        example = tokenize_conversation(tokenizer, conversation.messages)
        if len(example) > max_length:
            truncated += 1
            example = Example(example.input_ids[:max_length], example.labels[:max_length])
        if example.n_targets == 0:
            dropped += 1
            continue
        kept.append(example)
    stats = DataStats(
        examples=len(kept),
        truncated=truncated,
        dropped=dropped,
        tokens=sum(len(e) for e in kept),
        target_tokens=sum(e.n_targets for e in kept),
    )
    return kept, stats


# --- packing and order ---------------------------------------------------------------------


def epoch_order(n: int, *, seed: int, epoch: int) -> list[int]:
    """A permutation of ``range(n)`` that depends only on seed and epoch (so it can be replayed)."""
    order = list(range(n))
    random.Random(f"order:{seed}:{epoch}").shuffle(order)  # noqa: S311 (reproducible, not secret)
    return order


def plan_rows(lengths: Sequence[int], order: Sequence[int], *, capacity: int) -> list[list[int]]:
    """Best-fit packing: each example goes to the open row with the least room that fits it.

    Returns rows of example indices. ``lengths`` must all be at most ``capacity``. Keeping the
    free space sorted makes this O(n log n), so it is cheap to replay on resume.
    """
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), sorted
    for index in order:
        length = lengths[index]
        slot = bisect.bisect_left(free, (length, -1))
        if slot < len(free):
            room, row = free.pop(slot)
            rows[row].append(index)
            room -= length
        else:
            rows.append([index])
            room, row = capacity - length, len(rows) - 1
        if room > 0:
            bisect.insort(free, (room, row))
    return rows


class BatchPlan:
    """Which examples go in which micro-batch, per epoch, reproducibly from the seed.

    A position in the data is ``(epoch, micro-batch index)``; :meth:`micro_batches` replays an
    epoch from any position, which is what resuming a checkpoint needs.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        capacity: int,
        batch_size: int,
        seed: int,
        packing: bool = True,
        shuffle: bool = True,
    ) -> None:
        if any(len(e) > capacity for e in examples):
            raise DatasetError(f"examples must be truncated to {capacity} tokens before planning")
        self.examples = list(examples)
        self.capacity, self.batch_size, self.seed = capacity, batch_size, seed
        self.packing, self.shuffle = packing, shuffle
        self._cache: dict[int, list[list[list[int]]]] = {}

    def batches(self, epoch: int) -> list[list[list[int]]]:
        """Micro-batches of epoch ``epoch``: each a list of rows, each row example indices."""
        if epoch not in self._cache:
            n = len(self.examples)
            order = epoch_order(n, seed=self.seed, epoch=epoch) if self.shuffle else range(n)
            if self.packing:
                lengths = [len(e) for e in self.examples]
                rows = plan_rows(lengths, list(order), capacity=self.capacity)
            else:
                rows = [[index] for index in order]
            size = self.batch_size
            self._cache = {epoch: [rows[i : i + size] for i in range(0, len(rows), size)]}
        return self._cache[epoch]

    def steps_in_epoch(self, epoch: int, accumulation: int) -> int:
        """Optimizer steps in ``epoch`` when each step takes ``accumulation`` micro-batches."""
        return math.ceil(len(self.batches(epoch)) / accumulation)

    def micro_batches(self, epoch: int, start: int = 0) -> Iterator[tuple[int, list[list[int]]]]:
        """``(index, rows)`` of the epoch's micro-batches from ``start`` on."""
        batches = self.batches(epoch)
        for index in range(start, len(batches)):
            yield index, batches[index]


@dataclass
class Batch:
    """Tensors for one micro-batch (see :func:`collate`)."""

    input_ids: Any  # LongTensor [rows, length]
    labels: Any  # LongTensor [rows, length], -100 off assistant tokens and on padding
    position_ids: Any  # LongTensor [rows, length], restarting at 0 for each example
    tokens: int  # non-pad tokens
    targets: int  # tokens the loss is computed on

    def to(self, device: Any) -> Batch:
        return Batch(
            self.input_ids.to(device),
            self.labels.to(device),
            self.position_ids.to(device),
            self.tokens,
            self.targets,
        )


def row_arrays(row: Sequence[Example], length: int, pad_id: int) -> tuple[list[int], ...]:
    """One row's ids, labels and positions, padded to ``length``.

    Padding gets positions of its own that restart at 0, so it forms a separate (ignored)
    sequence and never changes what the real tokens see.
    """
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in row:
        ids += example.input_ids
        labels += example.labels
        positions += range(len(example))
    pad = length - len(ids)
    return ids + [pad_id] * pad, labels + [IGNORE_INDEX] * pad, positions + list(range(pad))


def collate(rows: Sequence[Sequence[Example]], *, pad_id: int) -> Batch:
    """Stack rows into tensors as long as the longest row (not the capacity: less padding)."""
    import torch

    length = max(sum(len(e) for e in row) for row in rows)
    ids, labels, positions = zip(*(row_arrays(row, length, pad_id) for row in rows), strict=True)
    return Batch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        labels=torch.tensor(labels, dtype=torch.long),
        position_ids=torch.tensor(positions, dtype=torch.long),
        tokens=sum(len(e) for row in rows for e in row),
        targets=sum(e.n_targets for row in rows for e in row),
    )


def check_enough(examples: Sequence[Example], stats: DataStats, *, length: int) -> None:
    """Refuse a training set too small to learn from, saying how to fix it."""
    if len(examples) >= MIN_TRAIN_EXAMPLES:
        return
    detail = ""
    if stats.dropped:
        detail = (
            f"; {stats.dropped} examples lost every assistant token to truncation at "
            f"{length} tokens: raise sequence_length"
        )
    raise DatasetError(
        f"the training set has {len(examples)} usable examples; add at least "
        f"{MIN_TRAIN_EXAMPLES} conversations with assistant answers{detail}"
    )

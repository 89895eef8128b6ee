"""Building the prompt a chat request sends: the creator's persona, the retrieved passages, the
history and the question fitted with the answer's reserve into the model's context window
(:func:`build`, the one place the web app, the widget and the API build it), and the token
estimates the quota and the meter rely on.

Three estimates, each for its purpose and deliberately different:

* :func:`prompt_bound` is a strict upper bound (a token is at least one byte), so the quota can
  reserve a request's cost before the engine has counted it;
* :func:`estimate_tokens` is a cheap, high count (3 bytes a token) for fitting the prompt to
  the context window before sending it (:func:`strict_tokens`, a byte a token, when a model's
  tokenizer proved it too low);
* :func:`spent_prompt_estimate` is what a request stopped before the engine reported usage is
  billed for its prompt (4 bytes a token).

All of them add :data:`MESSAGE_OVERHEAD_TOKENS` per message for what the chat template wraps
around it. Pure functions over ``{"role", "content"}`` messages; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gptstudio.errors import DomainError

if TYPE_CHECKING:
    from gptstudio.services.retrieval import Passage

Message = dict[str, str]
MESSAGE_OVERHEAD_TOKENS = 8
"""What a chat template adds around each message (role markers, separators), estimated."""
PROMPT_OVERHEAD_TOKENS = 16  # beginning-of-text and the assistant turn's header
MAX_PASSAGE_CHARS = 1500
"""Longest passage text put into the prompt (chunks are about 256 words at most)."""
METER_MESSAGE_TOKENS = 4  # the meter's (lower) per-message estimate for a stopped request


# --- building ---------------------------------------------------------------------------------


def with_system_prompt(system_prompt: str, messages: list[Message]) -> list[Message]:
    """The creator's persona goes first unless the caller sent a system message."""
    if system_prompt and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": system_prompt}, *messages]
    return messages


def with_passages(
    messages: list[Message], passages: Sequence[Passage], *, max_chars: int = MAX_PASSAGE_CHARS
) -> list[Message]:
    """``messages`` with the passages, numbered, in the system message (a new one if none).

    The first system message gets them appended, after the creator's persona; the instruction
    asks the model to cite each passage it uses as ``[n]``. No passages: ``messages`` unchanged.
    """
    if not passages:
        return list(messages)
    lines = [
        "Sources from the assistant's documents follow. Use them when they answer the question "
        "and cite each source you use as [n], for example [1]. If they do not contain the "
        "answer, say so instead of guessing.",
    ]
    for passage in passages:
        text = passage.text if len(passage.text) <= max_chars else passage.text[:max_chars] + "…"
        lines.append(f"[{passage.n}] {passage.label}\n{text}")
    block = "\n\n".join(lines)
    result = [dict(m) for m in messages]
    for message in result:
        if message["role"] == "system":
            message["content"] = f"{message['content']}\n\n{block}" if message["content"] else block
            return result
    return [{"role": "system", "content": block}, *result]


# --- estimating -------------------------------------------------------------------------------


def prompt_bound(messages: list[dict[str, str]]) -> int:
    """A strict upper bound of the prompt's tokens: a token is at least one byte of text."""
    text = sum(len(str(m.get("content", "")).encode()) for m in messages)
    return text + MESSAGE_OVERHEAD_TOKENS * len(messages) + PROMPT_OVERHEAD_TOKENS


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately high token count: one token per 3 UTF-8 bytes.

    English runs near 4 characters per token in subword vocabularies, CJK near one character
    (3 bytes) per token, so this over-counts most text by up to a third and rarely under-counts:
    trimming a little early is better than an engine refusing the prompt. The embedded engine
    trims again with the model's real tokenizer and chat template.
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


def spent_prompt_estimate(messages: list[dict[str, str]]) -> int:
    """The prompt tokens a request stopped before the engine reported usage is billed: four
    bytes a token, and :data:`METER_MESSAGE_TOKENS` per message."""
    prompt_bytes = sum(len(m["content"].encode()) for m in messages)
    return math.ceil(prompt_bytes / 4) + METER_MESSAGE_TOKENS * len(messages)


# --- building to the context window ----------------------------------------------------------

ANSWER_FLOOR_TOKENS = 128
"""The answer's reserve shrinks down to this (or to ``max_tokens`` when that is smaller) before
passages are cut."""
MIN_PASSAGE_CHARS = 120
"""A passage cut shorter than this is dropped instead: a stub cites nothing useful."""


class PromptTooLong(DomainError):
    """The question alone (with the smallest answer reserve) does not fit the model's window."""

    status_code = 400
    type = "invalid_request_error"
    code = "context_length_exceeded"


@dataclass(frozen=True)
class Budgeted:
    """A prompt built to a context window: the messages to send, the passages they hold
    (numbered as before; the last one may be cut), the answer's ``max_tokens``, and how many
    history turns and passages had to go."""

    messages: list[Message]
    passages: list[Passage]
    max_tokens: int
    dropped_turns: int = 0
    dropped_passages: int = 0


def dense_tokens(text: str) -> int:
    """A count for tokenizers that split unseen text finely: a token per 1.5 bytes (small
    vocabularies, such as the tiny model's, on text unlike their corpus)."""
    return math.ceil(len(text.encode("utf-8")) / 1.5)


def strict_tokens(text: str) -> int:
    """The count no tokenizer exceeds: a token is at least one byte of text."""
    return len(text.encode("utf-8"))


COUNTS: tuple[Callable[[str], int], ...] = (estimate_tokens, dense_tokens, strict_tokens)
"""The counts a prompt is built with, in turn, while the engine finds it too long."""


def build(
    *,
    system_prompt: str,
    messages: list[Message],
    passages: Sequence[Passage] = (),
    window: int | None,
    max_tokens: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> Budgeted:
    """The prompt for ``messages``: the creator's persona and the numbered passages in the
    system message, fitted with the answer's reserve into ``window`` tokens.

    What gives way, in order: the oldest history turns (the kept conversation starts at a user
    turn); then the answer's reserve, down to :data:`ANSWER_FLOOR_TOKENS`; then the passages,
    least relevant first (the last kept one cut to the room left); then the persona's tail. The
    last question (and what follows it) always stays: when it cannot fit alone with the
    smallest reserve, :class:`PromptTooLong` says so. ``window`` ``None`` (unknown) builds
    without a budget. ``count_tokens`` is an estimate; :func:`strict_tokens` is the bound.
    """
    base = with_system_prompt(system_prompt, messages)
    passages = list(passages)
    if window is None:
        return Budgeted(with_passages(base, passages), passages, max_tokens)

    def cost(kept: list[Message]) -> int:
        return PROMPT_OVERHEAD_TOKENS + sum(
            count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in kept
        )

    turns = [i for i, m in enumerate(base) if m["role"] != "system"]
    users = [i for i in turns if base[i]["role"] == "user"]
    question = users[-1] if users else (turns[-1] if turns else len(base))
    history = [i for i in turns if i < question]
    floor = min(ANSWER_FLOOR_TOKENS, max_tokens)
    alone = cost(base[question:])
    if alone + floor > window:
        raise PromptTooLong(
            f"This message is too long for the model: it takes about {alone} tokens, and the "
            f"model's context window of {window} tokens must also keep {floor} for the answer. "
            "Shorten it, or send it in parts."
        )

    def assemble(start: int, kept: list[Passage], persona: int | None = None) -> list[Message]:
        gone = set(history[:start])
        kept_messages = [dict(m) for i, m in enumerate(base) if i not in gone]
        if persona is not None:  # chars of the persona kept
            first = next(m for m in kept_messages if m["role"] == "system")
            first["content"] = first["content"][:persona]
        built = with_passages(kept_messages, kept)
        return [m for m in built if m["role"] != "system" or m["content"]]  # a persona cut away

    # 1. History goes first, oldest turns first (a kept conversation starts at a user turn).
    starts = [n for n, i in enumerate(history) if base[i]["role"] == "user"] + [len(history)]
    start = next(s for s in starts if cost(assemble(s, passages)) + max_tokens <= window or
                 s == len(history))  # fmt: skip
    dropped = start
    prompt = assemble(start, passages)
    if cost(prompt) + max_tokens <= window:
        return Budgeted(prompt, passages, max_tokens, dropped_turns=dropped)
    # 2. The answer's reserve shrinks to its floor.
    if cost(prompt) + floor <= window:
        return Budgeted(prompt, passages, window - cost(prompt), dropped_turns=dropped)
    # 3. Passages are dropped, least relevant first; the last one to go comes back cut to fit.
    room = window - floor
    kept = list(passages)
    while kept and cost(assemble(start, kept)) > room:
        last = kept.pop()
        if cost(assemble(start, kept)) <= room:

            def fits_cut(chars: int, last: Passage = last) -> bool:
                return cost(assemble(start, [*kept, _cut(last, chars)])) <= room

            size = _longest(fits_cut, min(len(last.text), MAX_PASSAGE_CHARS))
            if size >= MIN_PASSAGE_CHARS:
                kept.append(_cut(last, size))
    prompt = assemble(start, kept)
    if cost(prompt) > room:  # 4. The persona's tail (it is the only system text left).
        system = next(m["content"] for m in prompt if m["role"] == "system")
        size = _longest(lambda n: cost(assemble(start, kept, n)) <= room, len(system))
        prompt = assemble(start, kept, size)
    return Budgeted(
        prompt, kept, min(max_tokens, window - cost(prompt)), dropped_turns=dropped,
        dropped_passages=len(passages) - len(kept),
    )  # fmt: skip


def _cut(passage: Passage, chars: int) -> Passage:
    if chars >= len(passage.text):
        return passage
    return replace(passage, text=passage.text[:chars].rstrip() + "…")


def _longest(fits: Callable[[int], bool], high: int) -> int:
    """The largest ``n`` in ``0..high`` with ``fits(n)`` (``fits`` is monotone), or 0."""
    low = 0
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low

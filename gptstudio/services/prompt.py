"""Building the prompt a chat request sends: the creator's persona, the retrieved passages,
trimming to the context window, and the token estimates the quota and the meter rely on.

Three estimates, each for its purpose and deliberately different:

* :func:`prompt_bound` is a strict upper bound (a token is at least one byte), so the quota can
  reserve a request's cost before the engine has counted it;
* :func:`estimate_tokens` is a cheap, high count (3 bytes a token) for trimming the
  conversation to the context window before sending it;
* :func:`spent_prompt_estimate` is what a request stopped before the engine reported usage is
  billed for its prompt (4 bytes a token).

All of them add :data:`MESSAGE_OVERHEAD_TOKENS` per message for what the chat template wraps
around it. Pure functions over ``{"role", "content"}`` messages; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

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


# --- trimming ---------------------------------------------------------------------------------


def trim_to_context(
    messages: list[Message],
    *,
    max_tokens_budget: int,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> list[Message]:
    """The newest turns that fit in ``max_tokens_budget`` tokens (the context window minus the
    answer's ``max_tokens``), oldest user/assistant turns dropped first.

    Every system message (the persona and the passages) and the last user message (with what
    follows it) are always kept, even when they alone exceed the budget: the engine then
    refuses with ``context_length_exceeded`` rather than answering a question it never saw. The
    kept conversation starts at a user message, as chat templates expect. Each message costs
    ``count_tokens(content)`` plus :data:`MESSAGE_OVERHEAD_TOKENS`.
    """
    cost = [count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages]
    turns = [i for i, m in enumerate(messages) if m["role"] != "system"]
    users = [i for i in turns if messages[i]["role"] == "user"]
    if not users:
        return list(messages)
    fixed = sum(c for i, c in enumerate(cost) if messages[i]["role"] == "system")
    for start in sorted({turns[0], *users}):  # oldest first: keep as much as fits
        kept = fixed + sum(cost[i] for i in turns if i >= start)
        if kept <= max_tokens_budget or start == users[-1]:
            break
    return [m for i, m in enumerate(messages) if m["role"] == "system" or i >= start]

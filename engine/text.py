"""Text on either side of the model: chat messages to prompt ids, ids back to streamed text.

Pure functions and small classes over a Hugging Face tokenizer; no torch. :func:`fit_messages`
trims the oldest turns so a conversation fits the context window; :class:`Detokenizer` turns
token ids into text deltas without splitting a multi-byte character; :class:`StopMatcher`
holds back text that may be the start of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import ContextLengthError, InvalidRequestError
from engine.protocol import Message

REPLACEMENT = "\ufffd"  # what decoding shows for an incomplete UTF-8 sequence


def encode_chat(
    messages: Sequence[Message], tokenizer: Any, *, chat_template: str | None = None
) -> list[int]:
    """Prompt ids: the chat template with a generation prompt opening the assistant's turn."""
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True, chat_template=chat_template
        )
    except TemplateError as error:  # e.g. "Conversation roles must alternate user/assistant"
        raise InvalidRequestError(
            f"the model's chat template refused these messages: {error}", param="messages"
        ) from error
    # The template writes any special tokens (BOS) itself.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_messages(
    messages: Sequence[Message],
    tokenizer: Any,
    max_context: int,
    reserve: int,
    *,
    chat_template: str | None = None,
) -> list[Message]:
    """The newest messages whose prompt leaves ``reserve`` tokens free in ``max_context``.

    System messages are always kept; older turns are dropped from the front so that the kept
    conversation starts at a user message (or is the last message alone). Raises
    :class:`ContextLengthError` when even the system messages and the last message do not fit.
    """
    return fit_prompt(messages, tokenizer, max_context, reserve, chat_template=chat_template)[0]


def fit_prompt(
    messages: Sequence[Message],
    tokenizer: Any,
    max_context: int,
    reserve: int,
    *,
    chat_template: str | None = None,
) -> tuple[list[Message], list[int]]:
    """:func:`fit_messages` and the prompt ids of what it keeps (one encoding when all fit)."""
    encoded: dict[int, list[int]] = {}
    others = [i for i, m in enumerate(messages) if m["role"] != "system"]
    # Where the kept conversation may start: at a user turn, or at the last message alone.
    starts = [n for n, i in enumerate(others) if messages[i]["role"] == "user"]
    starts = sorted({0, *starts, max(len(others) - 1, 0)})

    def kept(start: int) -> list[Message]:
        dropped = set(others[:start])
        return [m for i, m in enumerate(messages) if i not in dropped]

    def fits(start: int) -> bool:
        if start not in encoded:
            encoded[start] = encode_chat(kept(start), tokenizer, chat_template=chat_template)
        return len(encoded[start]) + reserve <= max_context

    if fits(0):  # the usual case
        return kept(0), encoded[0]
    if not fits(starts[-1]):
        raise ContextLengthError(
            f"the system prompt and the last message take {len(encoded[starts[-1]])} tokens; "
            f"with {reserve} tokens kept for the answer that exceeds the context window of "
            f"{max_context} tokens: shorten them or lower max_tokens",
            param="messages",
        )
    low, high = 1, len(starts) - 1  # fewer messages, fewer tokens: binary search the cut
    while low < high:
        middle = (low + high) // 2
        if fits(starts[middle]):
            high = middle
        else:
            low = middle + 1
    return kept(starts[low]), encoded[starts[low]]


class Detokenizer:
    """Token ids in, text deltas out; a character split over tokens waits for its last byte.

    Decodes a short window (the previous delta's tokens plus the new ones) rather than the
    whole sequence, so each step costs the same however long the answer grows.
    """

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # window start: context for the tokens after it
        self._read = 0  # tokens before this are already in emitted text

    def _decode(self, ids: list[int]) -> str:
        return str(
            self._tokenizer.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def push(self, token_id: int) -> str:
        """Add one token; the text it completes (possibly empty)."""
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) <= len(before) or after.endswith(REPLACEMENT):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return after[len(before) :]

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character shows as U+FFFD)."""
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return after[len(before) :]


class StopMatcher:
    """Cuts the answer at the first stop string; text that may begin one is held back."""

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was reached)."""
        text = self._held + delta
        hits = [text.find(stop) for stop in self._stops if stop in text]
        if hits:
            self._held = ""
            return text[: min(hits)], True
        hold = self._partial_length(text)
        self._held = text[len(text) - hold :]
        return text[: len(text) - hold], False

    def _partial_length(self, text: str) -> int:
        longest = max((len(stop) for stop in self._stops), default=1)
        for size in range(min(len(text), longest - 1), 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0

    def flush(self) -> str:
        """The held-back text, once the answer ends without a stop string."""
        held, self._held = self._held, ""
        return held

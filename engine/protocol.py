"""The OpenAI chat-completions protocol, the one module both processes speak it with.

The engine (:mod:`engine.server`) and the web app (``gptstudio.api.chat``, the chat service,
the chat page and the widget) import it, so a request the engine accepts the app accepts too,
and every response body and chunk is built and read here:

* requests: :class:`ChatCompletionRequest` (content parts and the ``developer`` role accepted;
  ``n`` > 1, tools, ``response_format`` and log-probabilities refused by name, as an OpenAI
  error, rather than silently ignored; ``max_tokens`` below 1 refused);
* events: an answer is :class:`TextDelta` events then one :class:`Finish` (with
  :class:`Usage`); :class:`Chunks` encodes them as ``chat.completion.chunk`` bodies,
  :func:`read_events` decodes a streamed answer back into them, :func:`sse` frames a body as a
  server-sent event.

Only what the engine serves is modelled; unknown fields are ignored, as OpenAI-compatible
servers do. Pydantic only, no torch: the web process imports this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.errors import InvalidRequestError, StreamError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role
DONE = "[DONE]"


# --- requests -------------------------------------------------------------------------------


class TextPart(BaseModel):
    """One part of a message's content list; only text is read."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[TextPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None  # OpenAI's newer name for max_tokens
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # what a sampler can take

    @field_validator("model")
    @classmethod
    def _printable_model(cls, value: str) -> str:
        # No NUL (PostgreSQL text cannot hold it) and no lone surrogate (not UTF-8): a name
        # that cannot be looked up is refused here, not by the database.
        if "\x00" in value or not value.isprintable() or _not_utf8(value):
            raise ValueError("model must be a printable name from /v1/models")
        return value

    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None

    def check_supported(self) -> None:
        """Refuse, by parameter, what this protocol does not do (rather than ignore it)."""
        if self.n != 1:
            raise InvalidRequestError("n must be 1: one answer per request", param="n")
        if self.logprobs or self.top_logprobs:
            param = "logprobs" if self.logprobs else "top_logprobs"
            raise InvalidRequestError("logprobs are not supported", param=param)
        if self.tools:
            raise InvalidRequestError("tools are not supported by this model", param="tools")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise InvalidRequestError(
                "response_format is not supported: answers are plain text",
                param="response_format",
            )
        for name in ("max_completion_tokens", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidRequestError(f"{name} {value} must be at least 1", param=name)

    @property
    def answer_limit(self) -> int | None:
        """``max_completion_tokens``, else ``max_tokens``."""
        return (
            self.max_completion_tokens
            if self.max_completion_tokens is not None
            else (self.max_tokens)
        )

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def plain_messages(self) -> list[Message]:
        """The messages as ``{"role", "content"}`` strings (see :func:`normalize_messages`)."""
        return normalize_messages([m.model_dump() for m in self.messages])


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """``{"role", "content"}`` pairs with string content; text parts are joined, roles checked."""
    if not messages:
        raise InvalidRequestError("messages is empty: send at least one message", param="messages")
    return [_normalize_message(message, index) for index, message in enumerate(messages)]


def _normalize_message(message: Mapping[str, Any], index: int) -> Message:
    role = ROLE_ALIASES.get(str(message.get("role")), str(message.get("role")))
    if role not in ROLES:
        raise InvalidRequestError(
            f"messages[{index}].role {message.get('role')!r} is not supported; use system, "
            "user or assistant",
            param=f"messages[{index}].role",
        )
    return {"role": role, "content": _content_text(message.get("content"), index)}


def _content_text(content: Any, index: int) -> str:
    text = _raw_text(content, index)
    if _not_utf8(text):
        raise InvalidRequestError(
            f"messages[{index}].content is not valid Unicode (a lone surrogate escape)",
            param=f"messages[{index}].content",
        )
    return text


def _raw_text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise InvalidRequestError(
                    f"messages[{index}].content holds a non-text part; this model reads text only",
                    param=f"messages[{index}].content",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise InvalidRequestError(
        f"messages[{index}].content must be a string or a list of text parts",
        param=f"messages[{index}].content",
    )


class AdapterLoadRequest(BaseModel):
    """``POST /v1/adapters``: serve the adapter in ``path`` as model ``name``.

    See :meth:`engine.core.Engine.adapter_path` for how ``path`` is resolved; without it the
    folder ``<adapters-dir>/<name>`` is loaded.
    """

    name: str = Field(min_length=1)
    path: str | None = None


class VllmLoadRequest(BaseModel):
    """vLLM's ``POST /v1/load_lora_adapter`` body, accepted too."""

    lora_name: str = Field(min_length=1)
    lora_path: str


class VllmUnloadRequest(BaseModel):
    """vLLM's ``POST /v1/unload_lora_adapter`` body."""

    lora_name: str = Field(min_length=1)


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """The tokens one answer took."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return usage_body(self.prompt_tokens, self.completion_tokens)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any] | None) -> Usage | None:
        """An OpenAI ``usage`` object (``None`` or empty: unknown)."""
        if not body:
            return None
        return cls(int(body.get("prompt_tokens", 0)), int(body.get("completion_tokens", 0)))


@dataclass(frozen=True)
class Start:
    """The server accepted the request and the answer begins (OpenAI's first chunk: the role)."""


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The answer ended: why (``stop``, ``length``) and, when known, its usage."""

    reason: str
    usage: Usage | None = None


Event = Start | TextDelta | Finish


# --- response bodies ------------------------------------------------------------------------


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    *, id: str, model: str, text: str, finish_reason: str, usage: dict[str, int]
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


@dataclass(frozen=True)
class Chunks:
    """Builds the ``chat.completion.chunk`` objects of one streamed answer."""

    id: str
    model: str
    created: int
    include_usage: bool  # then every chunk has "usage": null, and a last one carries it

    def _body(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def delta(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        """A chunk with one choice: new text (or the role), or the finish reason."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._body([choice])

    def usage(self, usage: dict[str, int]) -> dict[str, Any]:
        """The last chunk when usage was asked for: no choices, the token counts."""
        return {**self._body([]), "usage": usage}

    def of(self, event: Event) -> list[dict[str, Any]]:
        """The chunks that carry ``event``: the role, a text delta, or the finish reason (then
        the usage chunk, when it was asked for and is known)."""
        if isinstance(event, Start):
            return [self.delta({"role": "assistant", "content": ""})]
        if isinstance(event, TextDelta):
            return [self.delta({"content": event.text})]
        finish = [self.delta({}, finish_reason=event.reason)]
        if self.include_usage and event.usage is not None:
            finish.append(self.usage(event.usage.to_dict()))
        return finish


def sse(data: Mapping[str, Any] | str) -> str:
    """One server-sent event: a JSON body, or ``[DONE]``."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n"


async def read_events(lines: AsyncIterable[str]) -> AsyncIterator[TextDelta | Finish]:
    """The events of a streamed answer, from its server-sent-event lines.

    Text deltas as they come, then one :class:`Finish`, sent once its usage chunk arrived (or
    the stream ended without one). An error object inside the stream (the server failed after
    the answer began) raises :class:`~engine.errors.StreamError`.
    """
    reason: str | None = None
    async for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data.strip() == DONE:
            break
        chunk = json.loads(data)
        if chunk.get("error"):
            raise StreamError.from_body(chunk["error"])
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content") or ""
            if text:
                yield TextDelta(text)
            reason = choice.get("finish_reason") or reason
        usage = Usage.from_dict(chunk.get("usage"))
        if usage is not None:
            yield Finish(reason or "stop", usage)
            return
    if reason is not None:
        yield Finish(reason)


def model_body(id: str, *, parent: str | None, max_model_len: int) -> dict[str, Any]:
    """One entry of ``GET /v1/models`` (the fields vLLM returns)."""
    return {
        "id": id,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "gptstudio",
        "root": id,
        "parent": parent,
        "max_model_len": max_model_len,
    }

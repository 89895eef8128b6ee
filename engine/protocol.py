"""The OpenAI chat-completions wire format: request bodies in, response and chunk bodies out.

Only what the engine serves is modelled; unknown fields are ignored, as OpenAI-compatible
servers do, and features the engine lacks (``n`` > 1, tools, log-probabilities) are refused by
name. No torch: the web app may import this module for the shapes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import InvalidRequestError


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
    model: str = Field(min_length=1)
    messages: list[ChatMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None  # OpenAI's newer name for max_tokens
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    logprobs: bool | None = None
    tools: list[Any] | None = None

    def check_supported(self) -> None:
        """Refuse, by parameter, what this engine does not do."""
        if self.n != 1:
            raise InvalidRequestError("n must be 1: one answer per request", param="n")
        if self.logprobs:
            raise InvalidRequestError("logprobs are not supported", param="logprobs")
        if self.tools:
            raise InvalidRequestError("tools are not supported by this model", param="tools")

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

"""The one OpenAI protocol module: requests read and refused by name, events encoded as chunks
and read back, as both the engine and the web app use it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.errors import InvalidRequestError, StreamError
from engine.protocol import (
    ChatCompletionRequest,
    Chunks,
    Finish,
    Start,
    TextDelta,
    Usage,
    normalize_messages,
    read_events,
    sse,
)

QUESTION = [{"role": "user", "content": "What colour is the hive door?"}]


def test_normalize_messages_joins_text_parts_and_maps_developer() -> None:
    parts = [{"type": "text", "text": "Who "}, {"type": "text", "text": "inspects?"}]
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": parts},
    ]
    assert normalize_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who inspects?"},
    ]


REFUSED: list[tuple[list[dict[str, Any]], str]] = [
    ([], "messages"),
    ([{"role": "tool", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content"),
]


@pytest.mark.parametrize(("messages", "param"), REFUSED)
def test_normalize_messages_refuses_what_it_cannot_read(
    messages: list[dict[str, Any]], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        normalize_messages(messages)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ],
)
def test_unsupported_parameters_are_refused_by_name(change: dict[str, Any], param: str) -> None:
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": QUESTION, **change})
    with pytest.raises(InvalidRequestError) as caught:
        request.check_supported()
    assert (caught.value.param, caught.value.status) == (param, 400)
    assert caught.value.to_dict()["error"]["type"] == "invalid_request_error"


def test_defaults_and_harmless_values_are_accepted() -> None:
    body = {"model": "m", "messages": QUESTION, "n": 1, "logprobs": False, "tools": [],
            "response_format": {"type": "text"}, "max_tokens": 1, "user": "u-1"}  # fmt: skip
    request = ChatCompletionRequest.model_validate(body)
    request.check_supported()
    assert request.answer_limit == 1 and request.plain_messages() == QUESTION


def test_content_parts_and_the_developer_role_are_read() -> None:
    parts = [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]
    body = {"model": "m", "messages": [{"role": "developer", "content": "Be brief."},
                                       {"role": "user", "content": parts}]}  # fmt: skip
    assert ChatCompletionRequest.model_validate(body).plain_messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.splitlines():
        yield line


async def _read(text: str) -> list[Any]:
    return [event async for event in read_events(_lines(text))]


@pytest.mark.parametrize("include_usage", [True, False])
def test_events_encoded_as_chunks_read_back_the_same(include_usage: bool) -> None:
    chunks = Chunks("chatcmpl-1", "m", 0, include_usage)
    usage = Usage(7, 2)
    sent = [Start(), TextDelta("Cobalt"), TextDelta(" blue"), Finish("length", usage)]
    wire = "".join(sse(chunk) for event in sent for chunk in chunks.of(event)) + sse("[DONE]")
    expected = [*sent[1:3], Finish("length", usage if include_usage else None)]
    assert asyncio.run(_read(wire)) == expected
    assert usage.to_dict() == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


def test_an_error_inside_a_stream_is_raised() -> None:
    wire = sse({"choices": [{"delta": {"content": "Co"}}]}) + sse(
        {"error": {"message": "out of memory", "code": "generation_failed"}}
    )
    with pytest.raises(StreamError, match="out of memory") as caught:
        asyncio.run(_read(wire))
    assert caught.value.code == "generation_failed"

"""``POST /v1/chat/completions``: the OpenAI chat-completions protocol for published assistants
(API key with scope ``chat``), streaming (SSE ending in ``data: [DONE]``) or not.

Answers carry OpenAI's ``x-ratelimit-*`` headers for the caller's plan; a refused request is a
429 with ``Retry-After`` (rate or token quota) or a 402 (a paid plan is needed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from gptstudio.api.deps import api_user
from gptstudio.models.user import UserPublic
from gptstudio.services import chat

router = APIRouter(prefix="/v1")


class ChatMessageIn(BaseModel):
    role: str
    content: str


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    model: str = Field(min_length=1)
    messages: list[ChatMessageIn]
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


def _params(body: ChatCompletionIn) -> chat.Params:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    limit = body.max_completion_tokens or body.max_tokens or 512
    return chat.Params(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=limit,
        stop=stop,
        seed=body.seed,
    )


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionIn, user: Annotated[UserPublic, Depends(api_user("chat"))]
) -> StreamingResponse | JSONResponse:
    model = chat.cached_served(slug=body.model)
    if model is None:
        key = f"user:{user.id}"
        model = await asyncio.to_thread(chat.served_for_user, slug=body.model, key=key)
    messages = [m.model_dump() for m in body.messages]
    context = chat.RequestContext()
    chunks = chat.stream_completion(
        model=model, messages=messages, params=_params(body), user_id=user.id, source="api",
        context=context,
    )  # fmt: skip
    first = await anext(chunks)  # errors surface here, before any byte of the answer is sent
    headers = {**context.headers(), "x-request-id": context.request_id}
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(first, chunks, body.model, usage, context),
            media_type="text/event-stream",
            headers=headers,
        )
    answer = await _collect(first, chunks, body.model, context)
    return JSONResponse(answer, headers=headers)


async def _sse(
    first: dict[str, Any],
    rest: AsyncIterator[dict[str, Any]],
    name: str,
    usage: bool,
    context: chat.RequestContext,
) -> AsyncIterator[str]:
    text: list[str] = []
    async for chunk in _prepend(first, rest):
        if not chunk.get("choices") and not usage:
            continue  # the usage-only chunk is sent only when the client asked for it
        out = {**chunk, "model": name}
        for choice in chunk.get("choices", []):
            text.append(choice.get("delta", {}).get("content") or "")
            if choice.get("finish_reason") and context.sources:
                # An extension field (OpenAI clients ignore it): the sources behind [n].
                out["citations"] = context.citations("".join(text))
        yield f"data: {json.dumps(out)}\n\n"
    yield "data: [DONE]\n\n"


async def _prepend(
    first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    yield first
    async for chunk in rest:
        yield chunk


async def _collect(
    first: dict[str, Any],
    rest: AsyncIterator[dict[str, Any]],
    name: str,
    context: chat.RequestContext,
) -> dict[str, Any]:
    text: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] = {}
    async for chunk in _prepend(first, rest):
        for choice in chunk.get("choices", []):
            text.append(choice.get("delta", {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
        usage = chunk.get("usage") or usage
    answer = {
        "id": context.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(text)},
                "finish_reason": finish or "stop",
            }
        ],
        "usage": usage,
    }
    if context.sources:
        answer["citations"] = context.citations("".join(text))
    return answer

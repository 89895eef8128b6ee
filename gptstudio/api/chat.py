"""``POST /v1/chat/completions``: the OpenAI chat-completions protocol for published assistants
(API key with scope ``chat``), streaming (SSE ending in ``data: [DONE]``) or not.

The request is :class:`engine.protocol.ChatCompletionRequest`, the engine's own, so whatever the
engine accepts (content parts, the ``developer`` role) is accepted here and what it refuses
(``n`` > 1, tools, ``response_format``, log-probabilities, ``max_tokens`` below 1) is refused
here with the same OpenAI error. The answer's events are encoded with the same
:class:`~engine.protocol.Chunks`. Answers carry OpenAI's ``x-ratelimit-*`` headers for the
caller's plan; a refused request is a 429 with ``Retry-After`` (rate or token quota) or a 402 (a
paid plan is needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from engine.errors import InvalidRequestError
from engine.protocol import (
    DONE,
    ChatCompletionRequest,
    Chunks,
    Event,
    Finish,
    TextDelta,
    completion_body,
    sse,
)
from gptstudio.api.deps import api_user
from gptstudio.api.errors import error_body
from gptstudio.errors import DomainError
from gptstudio.models.user import UserPublic
from gptstudio.services import completion

router = APIRouter(prefix="/v1")
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 512


def _params(body: ChatCompletionRequest) -> completion.Params:
    limit = body.answer_limit
    return completion.Params(
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        max_tokens=DEFAULT_MAX_TOKENS if limit is None else limit,
        stop=list(body.stop_strings),
        seed=body.seed,
    )


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, user: Annotated[UserPublic, Depends(api_user("chat"))]
) -> StreamingResponse | JSONResponse:
    try:
        body.check_supported()
        messages = body.plain_messages()
    except InvalidRequestError as refused:
        return JSONResponse(refused.to_dict(), status_code=refused.status)
    if body.model.startswith("ft:"):  # a fine-tuning API model, for its owner
        model: completion.Served | None = await asyncio.to_thread(
            completion.served_fine_tuned, name=body.model, user_id=user.id
        )
    else:
        model = completion.cached_served(slug=body.model)
    if model is None:
        key = f"user:{user.id}"
        model = await asyncio.to_thread(completion.served_for_user, slug=body.model, key=key)
    context = completion.RequestContext()
    events = completion.stream_completion(
        model=model, messages=messages, params=_params(body), user_id=user.id, source="api",
        context=context,
    )  # fmt: skip
    first = await anext(events)  # errors surface here, before any byte of the answer is sent
    headers = {**context.headers(), "x-request-id": context.request_id}
    if body.stream:
        return StreamingResponse(
            _sse(first, events, body.model, body.include_usage, context),
            media_type="text/event-stream",
            headers=headers,
        )
    answer = await _collect(first, events, body.model, context)
    return JSONResponse(answer, headers=headers)


async def _sse(
    first: Event,
    rest: AsyncGenerator[Event, None],
    name: str,
    usage: bool,
    context: completion.RequestContext,
) -> AsyncIterator[str]:
    chunks = Chunks(context.request_id, name, int(time.time()), include_usage=usage)
    text: list[str] = []
    try:
        async for event in _prepend(first, rest):
            bodies = chunks.of(event)
            if isinstance(event, TextDelta):
                text.append(event.text)
            if isinstance(event, Finish) and context.sources:
                # An extension field (OpenAI clients ignore it): the sources behind [n].
                bodies[0]["citations"] = context.citations("".join(text))
            for body in bodies:
                yield sse(body)
    except DomainError as error:  # the answer has begun: the error goes in the stream
        code = getattr(error, "code", None)
        yield sse(error_body(str(error), status=error.status_code, code=code))
    yield sse(DONE)


async def _prepend(first: Event, rest: AsyncGenerator[Event, None]) -> AsyncIterator[Event]:
    # Closing ``rest`` when the client goes away ends the engine request and meters it now.
    async with contextlib.aclosing(rest):
        yield first
        async for event in rest:
            yield event


async def _collect(
    first: Event,
    rest: AsyncGenerator[Event, None],
    name: str,
    context: completion.RequestContext,
) -> dict[str, Any]:
    text: list[str] = []
    finish: Finish | None = None
    async for event in _prepend(first, rest):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, Finish):
            finish = event
    usage = finish.usage.to_dict() if finish and finish.usage else {}
    answer = completion_body(
        id=context.request_id, model=name, text="".join(text),
        finish_reason=finish.reason if finish else "stop", usage=usage,
    )  # fmt: skip
    if context.sources:
        answer["citations"] = context.citations("".join(text))
    return answer

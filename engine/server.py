"""The engine's HTTP API: OpenAI chat completions, embeddings, model list, adapters, health.

Built so that a vLLM server started with ``--enable-lora`` can replace it with only a URL
change: the same ``/v1/chat/completions`` (streamed as ``chat.completion.chunk`` server-sent
events ending with ``data: [DONE]``), ``/v1/models``, and vLLM's ``/v1/load_lora_adapter`` and
``/v1/unload_lora_adapter``; plus ``/v1/adapters`` for the web app, and ``/v1/embeddings``
(MiniLM, for retrieval; see :mod:`engine.embeddings`). Errors are OpenAI error objects. With an
API key set, every ``/v1`` route needs ``Authorization: Bearer <key>``. A client that
disconnects cancels its request, freeing the slot at the next step.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException

from engine.core import Engine, Stream
from engine.embeddings import Embedder, EmbeddingRequest, check_dimensions, embedding_body
from engine.errors import (
    AuthenticationError,
    EngineBusyError,
    EngineError,
    InvalidRequestError,
    ModelNotFoundError,
)
from engine.protocol import (
    DONE,
    AdapterLoadRequest,
    ChatCompletionRequest,
    Chunks,
    Event,
    Finish,
    Start,
    TextDelta,
    Usage,
    VllmLoadRequest,
    VllmUnloadRequest,
    completion_body,
    model_body,
    sse,
)
from engine.sampling import SamplingParams

MAX_BODY_BYTES = 8 * 1024 * 1024
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(
    engine: Engine,
    *,
    api_key: str | None = None,
    adapters_dir: Path | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    embedder: Embedder | None = None,
) -> FastAPI:
    """The ASGI app; it starts the engine (and loads ``adapters_dir``) on startup.

    ``embedder`` serves ``/v1/embeddings``; without one that route answers 404.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        if adapters_dir is not None:
            await engine.load_adapters_dir(adapters_dir)
        yield
        await engine.stop()
        if embedder is not None:
            embedder.close()

    app = FastAPI(title="GPT Studio engine", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.state.api_key = api_key or None
    app.state.embedder = embedder
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_exception_handler(EngineError, engine_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error_response)  # type: ignore[arg-type]
    app.include_router(health)
    app.include_router(v1, dependencies=[Depends(require_key)])
    return app


# --- errors ---------------------------------------------------------------------------------


def error_json(status: int, error: EngineError) -> JSONResponse:
    headers = {}
    if isinstance(error, EngineBusyError):
        headers["Retry-After"] = str(error.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.to_dict(), status_code=status, headers=headers)


async def engine_error_response(request: Request, error: EngineError) -> JSONResponse:
    return error_json(error.status, error)


async def validation_error_response(
    request: Request, error: RequestValidationError
) -> JSONResponse:
    """A malformed body is a 400 naming the first bad field, like OpenAI."""
    first = error.errors()[0]
    if first.get("type") == "json_invalid":
        message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
        return error_json(400, InvalidRequestError(message.rstrip(": ")))
    param = field_path(first.get("loc", ()))
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return error_json(400, InvalidRequestError(message, param=param))


def field_path(location: Sequence[str | int]) -> str | None:
    """``("body", "messages", 0, "role")`` as ``messages[0].role``."""
    path = ""
    for part in location:
        if part == "body" and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or None


async def http_error_response(request: Request, error: HTTPException) -> JSONResponse:
    wrapped = InvalidRequestError(str(error.detail))
    return error_json(error.status_code, wrapped)


class BodyLimit:
    """Refuse request bodies announced larger than ``limit`` bytes (413) before reading them."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.limit:
                error = InvalidRequestError(
                    f"the request body is larger than {self.limit} bytes; send fewer or shorter "
                    "messages",
                    code="request_too_large",
                )
                await error_json(413, error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- dependencies ---------------------------------------------------------------------------


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def require_key(request: Request) -> None:
    """Check the shared bearer token, when one is configured."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationError("missing or wrong API key: send Authorization: Bearer <key>")


# --- routes ---------------------------------------------------------------------------------

health = APIRouter()
v1 = APIRouter(prefix="/v1")


@health.get("/healthz")
async def healthz(engine: Engine = Depends(get_engine)) -> JSONResponse:
    """200 while the scheduler runs (with load figures), else 503."""
    body = {"status": "ok" if engine.healthy else "stopped", "model": engine.name}
    return JSONResponse({**body, **engine.stats()}, status_code=200 if engine.healthy else 503)


@v1.get("/models")
async def list_models(engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """The base model and every loaded adapter."""
    cards = engine.models()
    data = [model_body(c.id, parent=c.parent, max_model_len=c.max_model_len) for c in cards]
    return {"object": "list", "data": data}


@v1.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, engine: Engine = Depends(get_engine)
) -> Response | dict[str, Any]:
    """Generate an answer with ``model`` (an adapter name, or the base model's)."""
    body.check_supported()
    params = SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        max_tokens=body.answer_limit,
        stop=body.stop_strings,
        seed=body.seed,
    )
    messages = body.plain_messages()
    stream = await engine.submit(body.model, messages, params)
    if body.stream:
        body_events = sse_events(stream, include_usage=body.include_usage)
        return StreamingResponse(body_events, media_type="text/event-stream", headers=SSE_HEADERS)
    return await complete(stream, request)


async def complete(stream: Stream, request: Request) -> dict[str, Any] | Response:
    """The whole answer, unless the client goes away first (then the request is cancelled)."""
    answer = asyncio.ensure_future(stream.text())
    gone = asyncio.ensure_future(wait_for_disconnect(request))
    await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not answer.done():
        stream.cancel()
        await answer
        return Response(status_code=499)  # nobody is listening; nginx's "client closed"
    return completion_body(
        id=f"chatcmpl-{stream.id}",
        model=stream.model,
        text=answer.result(),
        finish_reason=str(stream.finish_reason),
        usage=usage_of(stream).to_dict(),
    )


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client closes the connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        continue


def usage_of(stream: Stream) -> Usage:
    return stream.usage


async def answer_events(stream: Stream) -> AsyncIterator[Event]:
    """The answer as protocol events: the start, its text deltas, the finish with usage."""
    yield Start()
    async for text in stream:
        yield TextDelta(text)
    yield Finish(str(stream.finish_reason), usage_of(stream))


async def sse_events(stream: Stream, *, include_usage: bool) -> AsyncIterator[str]:
    """``chat.completion.chunk`` events; the request is cancelled if the client goes away."""
    chunks = Chunks(f"chatcmpl-{stream.id}", stream.model, int(time.time()), include_usage)
    try:
        async for event in answer_events(stream):
            for chunk in chunks.of(event):
                yield sse(chunk)
    except EngineError as error:  # the response has started: the error goes in the stream
        yield sse(error.to_dict())
    finally:
        stream.cancel()  # a no-op once finished; frees the slot when the client left mid-answer
    yield sse(DONE)


# --- embeddings -----------------------------------------------------------------------------


@v1.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    """OpenAI embeddings of ``input`` (a string or a list of strings) with MiniLM."""
    embedder: Embedder | None = request.app.state.embedder
    if embedder is None:
        raise ModelNotFoundError(
            f"The embedding model '{body.model}' does not exist; this engine was started with "
            "--no-embeddings",
            param="model",
        )
    embedder.check_model(body.model)
    check_dimensions(body.dimensions)
    texts = body.texts(max_inputs=embedder.max_inputs)
    embedded = await embedder.embed(texts)
    return embedding_body(model=body.model, embedded=embedded, encoding_format=body.encoding_format)


# --- adapters -------------------------------------------------------------------------------


@v1.get("/adapters")
async def list_adapters(engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """Loaded adapters with the folder each came from."""
    data = [{"id": a.name, "object": "adapter", "path": str(a.path)} for a in engine.adapters()]
    return {"object": "list", "data": data}


@v1.post("/adapters", status_code=201)
async def load_adapter(
    body: AdapterLoadRequest, response: Response, engine: Engine = Depends(get_engine)
) -> dict[str, Any]:
    """Serve an adapter as model ``name`` (201; 200 if already loaded from the same folder)."""
    adapter, created = await engine.load_adapter(body.name, body.path)
    if not created:
        response.status_code = 200
    return model_body(adapter.name, parent=engine.name, max_model_len=engine.runner.max_context)


@v1.delete("/adapters/{name:path}")
async def unload_adapter(name: str, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """Stop serving ``name``; answers already running with it finish first."""
    await engine.unload_adapter(name)
    return {"id": name, "object": "model", "deleted": True}


@v1.post("/load_lora_adapter", response_class=PlainTextResponse)
async def vllm_load(body: VllmLoadRequest, engine: Engine = Depends(get_engine)) -> str:
    """vLLM's adapter loading route, for clients written against vLLM."""
    await engine.load_adapter(body.lora_name, body.lora_path)
    return f"Success: LoRA adapter '{body.lora_name}' added successfully."


@v1.post("/unload_lora_adapter", response_class=PlainTextResponse)
async def vllm_unload(body: VllmUnloadRequest, engine: Engine = Depends(get_engine)) -> str:
    """vLLM's adapter unloading route."""
    await engine.unload_adapter(body.lora_name)
    return f"Success: LoRA adapter '{body.lora_name}' removed successfully."

"""Completions: which version serves an assistant, its adapter on the engine, the answer
streamed from the engine as protocol events, and the metering of every request.

The engine speaks the OpenAI chat-completions protocol (``python -m engine``, or a vLLM server
started with ``--enable-lora``: only ``GPTSTUDIO_ENGINE_URL`` changes); :mod:`engine.protocol`
reads its stream into :class:`~engine.protocol.TextDelta` and :class:`~engine.protocol.Finish`
events, which is all the callers see. A published assistant is served as the LoRA adapter of
its current model version; the adapter is loaded on first use with the vLLM-compatible
``/v1/load_lora_adapter`` call. The web UI, the widget and the JSON API all go through
:func:`stream_completion`: one place checks the plan (:mod:`.entitlements`), admits the request
within its quota and rate limit (:mod:`.quota`) and meters its tokens (:mod:`.usage`), once per
request, also when the caller stops early. Conversations are :mod:`.conversation`'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from engine.errors import EngineError
from engine.protocol import Event, Finish, Start, TextDelta, Usage, read_events
from gptstudio import cache, engine_client
from gptstudio.db import session_scope
from gptstudio.errors import DomainError, InvalidInput, ModelNotFound, type_for
from gptstudio.models import Assistant, ModelVersion
from gptstudio.services import prompt as prompts
from gptstudio.services import quota, response_cache, retrieval, rollout, usage
from gptstudio.services.entitlements import cached_entitlement, entitlement
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 32_000
MAX_MESSAGES = 200


class EngineUnavailable(DomainError):
    status_code = 503
    type = "server_error"
    code = "engineunavailable"
    retry_after = 5  # a restarting engine (or vLLM) is back in seconds to a few minutes


class EngineRefused(DomainError):
    """The engine answered with an error (busy, bad parameters…); its message is kept."""

    code = "engine_error"

    def __init__(self, message: str, *, status_code: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type_for(status_code)
        self.code = code or "engine_error"


@dataclass(frozen=True)
class Served:
    """What serves an assistant: the engine model name of its live version's adapter."""

    assistant_id: int
    slug: str
    system_prompt: str
    version_id: int
    adapter_name: str
    adapter_path: str
    rag_enabled: bool = False
    rag_top_k: int = 4
    name: str = ""
    welcome_message: str = ""
    conversation_starters: tuple[str, ...] = ()
    split_running: bool = False
    """A candidate version takes part of the traffic (A/B rollout)."""


@dataclass
class Params:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    def check(self) -> None:
        limit = get_settings().chat_max_tokens
        if not 0 <= self.temperature <= 2:
            raise InvalidInput("temperature must be between 0 and 2.")
        if not 0 < self.top_p <= 1:
            raise InvalidInput("top_p must be greater than 0 and at most 1.")
        if not 1 <= self.max_tokens <= limit:
            raise InvalidInput(f"max_tokens must be between 1 and {limit}.")


def check_messages(messages: list[dict[str, str]]) -> None:
    if not messages:
        raise InvalidInput("messages must contain at least one message.")
    if len(messages) > MAX_MESSAGES:
        raise InvalidInput(f"messages can hold at most {MAX_MESSAGES} messages.")
    for message in messages:
        if message.get("role") not in {"system", "user", "assistant"}:
            raise InvalidInput("Each message needs a role: system, user or assistant.")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("Each message needs non-empty text content.")
        if len(content) > MAX_MESSAGE_CHARS:
            raise InvalidInput(f"A message can be at most {MAX_MESSAGE_CHARS} characters long.")


_served = cache.memo("served versions")


def served(*, slug: str, version_id: int | None = None) -> Served:
    """The version of a published assistant that answers, or NotFound (OpenAI:
    model_not_found): ``version_id`` while it is still the current one or a live candidate (so a
    rollback also moves conversations pinned to the rolled-back version), else the current one."""
    return _served.get((slug, version_id), lambda: _load_served(slug, version_id))


def cached_served(*, slug: str) -> Served | None:
    """The live version from the cache alone (no I/O), when no A/B split runs; else ``None``."""
    found = _served.cached((slug, None))
    return None if found is cache.MISSING or found.split_running else found


def _load_served(slug: str, version_id: int | None) -> Served:
    with session_scope() as session:
        assistant = session.exec(select(Assistant).where(Assistant.slug == slug)).first()
        if assistant is None or not assistant.is_published:
            raise ModelNotFound(f"The model '{slug}' does not exist or is not published.")
        allowed = {assistant.current_model_version_id}
        if assistant.candidate_percent > 0:
            allowed.add(assistant.candidate_model_version_id)
        wanted = version_id if version_id in allowed else assistant.current_model_version_id
        version = session.get(ModelVersion, wanted or 0)
        if version is None or not version.adapter_path:
            raise ModelNotFound(f"The model '{slug}' has no published version yet.")
        return Served(
            assistant_id=assistant.id or 0, slug=assistant.slug,
            system_prompt=assistant.system_prompt, version_id=version.id or 0,
            adapter_name=f"{assistant.slug}-v{version.version}", adapter_path=version.adapter_path,
            rag_enabled=assistant.rag_enabled, rag_top_k=assistant.rag_top_k,
            name=assistant.name, welcome_message=assistant.welcome_message,
            conversation_starters=tuple(str(s) for s in assistant.conversation_starters),
            split_running=len(allowed - {None}) > 1,
        )  # fmt: skip


def served_for_user(*, slug: str, key: str) -> Served:
    """The version for a caller without a stored conversation (API: ``user:<id>``, widget:
    ``visitor:<id>``), sticky per key while a split runs."""
    live = served(slug=slug)
    if not live.split_running:  # no A/B split: the live version, without a second lookup
        return live
    chosen = rollout.version_for(assistant_id=live.assistant_id, conversation_key=key)
    return live if chosen == live.version_id else served(slug=slug, version_id=chosen)


def served_fine_tuned(*, name: str, user_id: int) -> Served:
    """An ``ft:`` model of the fine-tuning API, for its owner only: the version its job made,
    published or not (the assistant's persona and retrieval settings apply as to any version)."""
    from gptstudio.services import fine_tuning

    model = fine_tuning.fine_tuned_model(name=name, user_id=user_id)
    with session_scope() as session:
        assistant = session.get(Assistant, model.assistant_id)
        if assistant is None:
            raise ModelNotFound(f"The model '{name}' does not exist.")
        return Served(
            assistant_id=model.assistant_id, slug=assistant.slug,
            system_prompt=assistant.system_prompt, version_id=model.version_id,
            adapter_name=f"{assistant.slug}-v{model.version}", adapter_path=model.adapter_path,
            rag_enabled=assistant.rag_enabled, rag_top_k=assistant.rag_top_k, name=name,
        )  # fmt: skip


# Adapters this process has seen loaded, per engine URL, with the engine's context window and
# when that was checked: the engine is asked again after ADAPTER_CHECK_SECONDS, or at once when
# it answers that the adapter is not there (restarted, evicted).
ADAPTER_CHECK_SECONDS = 60.0
_loaded: dict[tuple[str, str], tuple[float, int | None]] = {}


async def _ensure_adapter(client: httpx.AsyncClient, model: Served) -> int | None:
    """Load the adapter if the engine lacks it; the context window the engine reports."""
    key = (str(client.base_url), model.adapter_name)
    known = _loaded.get(key)
    if known is not None and time.monotonic() - known[0] < ADAPTER_CHECK_SECONDS:
        return known[1]
    listed = await client.get("/v1/models")
    _raise_for(listed)
    cards = listed.json().get("data", [])
    window = next((int(c["max_model_len"]) for c in cards if c.get("max_model_len")), None)
    if not any(c.get("id") == model.adapter_name for c in cards):
        loaded = await client.post(
            "/v1/load_lora_adapter",
            json={"lora_name": model.adapter_name, "lora_path": model.adapter_path},
        )
        _raise_for(loaded)
    _loaded[key] = (time.monotonic(), window)
    return window


async def context_window(model: Served) -> int | None:
    """The engine's context window for ``model`` (its adapter loaded if needed); ``None`` when
    the engine does not say, or cannot be reached (the request then fails where it is sent)."""
    try:
        async with engine_client.client(httpx.Timeout(10, read=60)) as client:
            return await _ensure_adapter(client, model)
    except httpx.HTTPError:
        return None


async def find_sources(model: Served, messages: list[dict[str, str]]) -> retrieval.Retrieval:
    """The assistant's passages for the last question; none when retrieval is off for it."""
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if not model.rag_enabled or not question.strip():
        return retrieval.Retrieval()
    return await retrieval.retrieve(
        assistant_id=model.assistant_id, query=question, k=model.rag_top_k
    )


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error", {})
        message, code = str(error.get("message", response.text)), error.get("code")
    except (ValueError, AttributeError):
        message, code = response.text[:500], None
    raise EngineRefused(message, status_code=response.status_code, code=code)


@dataclass
class RequestContext:
    """One chat request as its caller sees it: the id that makes its usage event idempotent and,
    once admitted, the quota status behind the ``x-ratelimit-*`` headers."""

    request_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    admission: quota.Admission | None = None
    sources: retrieval.Retrieval = field(default_factory=retrieval.Retrieval)
    """The passages put in the prompt (retrieval on), numbered as the answer cites them."""

    def headers(self) -> dict[str, str]:
        return self.admission.headers() if self.admission else {}

    def citations(self, answer: str) -> list[dict[str, Any]]:
        """What to store and show with the answer: each passage, ``cited`` when ``[n]`` is used."""
        return retrieval.citations(self.sources, answer)


async def stream_completion(
    *,
    model: Served,
    messages: list[dict[str, str]],
    params: Params,
    user_id: int | None,
    source: str,
    visitor_id: str = "",
    context: RequestContext | None = None,
) -> AsyncGenerator[Event, None]:
    """The answer as protocol events (:class:`~engine.protocol.Start`, text deltas, one
    finish): the one path of the web UI, the widget and the API. Before the engine is called the
    plan is checked (402) and the request admitted by the quota (429, ``max_tokens`` clamped to
    what is left); the prompt is then built to the model's context window (:func:`.prompt.build`:
    history, answer reserve, passages and persona give way, the question stays); at the end, or
    when the caller stops early, the tokens are metered once and the reservation settled."""
    check_messages(messages)
    params.check()
    context = context or RequestContext()
    found = context.sources = await find_sources(model, messages)
    # Admitted on the whole prompt (a bound: the reservation is settled with what is spent).
    whole = prompts.with_passages(prompts.with_system_prompt(model.system_prompt, messages), found)
    admission = await _admit(
        model=model, prompt=whole, params=params, user_id=user_id, visitor_id=visitor_id,
        request_id=context.request_id,
    )  # fmt: skip
    context.admission = admission
    meter = Meter(model=model, admission=admission, request_id=context.request_id,
                  user_id=user_id, visitor_id=visitor_id, source=source, prompt=whole)  # fmt: skip
    params = replace(params, max_tokens=admission.max_tokens)
    try:
        window = await context_window(model)
        sent: prompts.Budgeted | None = None  # the prompt last built (and sent)

        def fit(count_tokens: Callable[[str], int]) -> prompts.Budgeted:
            nonlocal sent
            sent = built = prompts.build(
                system_prompt=model.system_prompt, messages=messages, passages=found,
                window=window, max_tokens=params.max_tokens, count_tokens=count_tokens,
            )  # fmt: skip
            # Only the passages the prompt holds are offered as sources.
            context.sources = retrieval.Retrieval(built.passages, warning=found.warning)
            return built

        built = fit(prompts.COUNTS[0])
        meter.prompt = built.messages
        params = replace(params, max_tokens=built.max_tokens)
        # Looked up only after admission (a cached answer never gets around the plan or the
        # quota), keyed by the final prompt (persona, passages) and parameters, per user.
        cache_key = _cache_key(model, built.messages, params, user_id, visitor_id)
        cached = await asyncio.to_thread(response_cache.get, cache_key) if cache_key else None
        if cached is not None:
            for event in cached_events(cached):
                meter.observe(event)
                yield event
        else:
            parts: list[str] = []
            finished = False
            async for event in _fitted_events(model, built, params, fit):
                meter.observe(event)
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                finished = finished or isinstance(event, Finish)
                yield event
            # Never cache an answer cut short, or one to a prompt fitted again with a denser
            # count (the key is the first prompt's).
            if cache_key and finished and sent is built:
                spent = meter.usage.to_dict() if meter.usage else {}
                answer = {"content": "".join(parts), "usage": spent}
                await asyncio.to_thread(response_cache.put, cache_key, answer)
        await meter.aclose()
    finally:
        meter.close()  # idempotent: after a disconnect or a stop, what was generated counts


async def _fitted_events(
    model: Served,
    built: prompts.Budgeted,
    params: Params,
    fit: Callable[[Callable[[str], int]], prompts.Budgeted],
) -> AsyncGenerator[Event, None]:
    """:func:`engine_events` for a prompt built to the window with the estimate. When the
    model's tokenizer counts more than the estimate and the engine refuses the prompt (before
    answering), it is built again with the next, denser count (:data:`.prompt.COUNTS`, down to
    a byte a token) and sent once more."""
    counts = iter(prompts.COUNTS[1:])
    while True:
        started = False
        try:
            async for event in engine_events(model, built.messages, params):
                started = True
                yield event
            return
        except EngineRefused as error:
            count = next(counts, None)
            if started or error.code != "context_length_exceeded" or count is None:
                raise
        log.info("the engine counted more tokens than estimated; fitting with %s", count.__name__)
        built = fit(count)
        params = replace(params, max_tokens=min(params.max_tokens, built.max_tokens))


def _cache_key(
    model: Served, prompt: list[dict[str, str]], params: Params, user_id: int | None,
    visitor_id: str,
) -> str | None:  # fmt: skip
    if not response_cache.cacheable(params) or not (user_id or visitor_id):
        return None
    scope = f"user:{user_id}" if user_id else f"visitor:{visitor_id}"
    return response_cache.key(
        version_id=model.version_id, messages=prompt, params=params, scope=scope
    )


def cached_events(cached: dict[str, Any]) -> list[Event]:
    """A cached answer as the engine's stream would have sent it (the tokens are metered again:
    the quota counts answers, cached or not)."""
    text = str(cached.get("content", ""))
    return [
        Start(),
        *([TextDelta(text)] if text else []),
        Finish("stop", Usage.from_dict(cached.get("usage"))),
    ]


async def _admit(
    *, model: Served, prompt: list[dict[str, str]], params: Params, user_id: int | None,
    visitor_id: str, request_id: str,
) -> quota.Admission:  # fmt: skip
    granted = cached_entitlement(user_id=user_id, assistant_id=model.assistant_id)
    if granted is None:
        granted = await asyncio.to_thread(
            entitlement, user_id=user_id, assistant_id=model.assistant_id
        )
    granted.require()
    return await quota.admit_async(
        granted, user_id=user_id, visitor_id=visitor_id, max_tokens=params.max_tokens,
        prompt_tokens=prompts.prompt_bound(prompt), request_id=request_id,
    )  # fmt: skip


async def engine_events(
    model: Served, prompt: list[dict[str, str]], params: Params
) -> AsyncGenerator[Event, None]:
    """The engine's answer as protocol events, with no checks or metering: :class:`Start` once
    the engine accepted the request (its refusals raise before), then what it streams. The
    prompt is sent as given (:func:`.prompt.build` fitted it to the context window)."""
    try:
        async with engine_client.client(httpx.Timeout(10, read=300)) as client:
            await _ensure_adapter(client, model)
            body = {
                "model": model.adapter_name, "messages": prompt,
                "stream": True, "stream_options": {"include_usage": True},
                "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_tokens, "stop": params.stop or None,
                "seed": params.seed,
            }  # fmt: skip
            for attempt in (1, 2):
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    if response.status_code == 404 and attempt == 1:
                        # The engine lost the adapter since it was last seen (a restart):
                        # load it again and ask once more; nothing was sent yet.
                        await response.aread()
                        _loaded.pop((str(client.base_url), model.adapter_name), None)
                        await _ensure_adapter(client, model)
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                        _raise_for(response)
                    yield Start()
                    async for event in read_events(response.aiter_lines()):
                        yield event
                    return
    except httpx.HTTPError as error:
        raise EngineUnavailable(
            f"The model server is not reachable right now ({type(error).__name__}); try again "
            "in a moment."
        ) from None
    except EngineError as error:  # the engine failed after the answer began
        raise EngineRefused(error.message, status_code=error.status, code=error.code) from None


class Meter:
    """Counts one request's tokens and, once, writes its usage event and settles its quota.

    The engine reports exact usage in its last chunk. A request stopped before that (the client
    went away, the user pressed stop) is counted from what was streamed: one token per text
    delta (at least a token per four characters), and the prompt estimated at four bytes a token.
    """

    def __init__(
        self, *, model: Served, admission: quota.Admission, request_id: str,
        user_id: int | None, visitor_id: str, source: str, prompt: list[dict[str, str]],
    ) -> None:  # fmt: skip
        self.model, self.admission, self.request_id = model, admission, request_id
        self.user_id, self.visitor_id, self.source = user_id, visitor_id, source
        self.prompt = prompt
        self.usage: Usage | None = None
        self.deltas = 0
        self.chars = 0
        self._closed = False
        self._lock = threading.Lock()

    def observe(self, event: Event) -> None:
        if isinstance(event, Finish):
            self.usage = event.usage or self.usage
        elif isinstance(event, TextDelta) and event.text:
            self.deltas += 1
            self.chars += len(event.text)

    def tokens(self) -> tuple[int, int]:
        """(input, output) tokens: the engine's count, or the estimate for a stopped request."""
        if self.usage is not None:
            return self.usage.prompt_tokens, self.usage.completion_tokens
        if not self.deltas:
            return 0, 0  # the engine never answered: nothing was generated
        estimate = prompts.spent_prompt_estimate(self.prompt)
        return estimate, max(self.deltas, math.ceil(self.chars / 4))

    def _claim(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def _event(self, spent_in: int, spent_out: int) -> usage.Event:
        return {
            "request_id": self.request_id, "assistant_id": self.model.assistant_id,
            "model_version_id": self.model.version_id, "user_id": self.user_id,
            "visitor_id": self.visitor_id if self.user_id is None else "",
            "source": self.source, "input_tokens": spent_in, "output_tokens": spent_out,
        }  # fmt: skip

    def _lost(self, spent_in: int, spent_out: int) -> None:
        log.exception(
            "could not meter request %s (assistant %s, user %s, visitor %r): %s input and "
            "%s output tokens", self.request_id, self.model.assistant_id, self.user_id,
            self.visitor_id, spent_in, spent_out,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Meter the request (in the group commit of concurrent requests) and settle its
        reservation; once (:meth:`close` after it does nothing)."""
        if not self._claim():
            return
        spent_in, spent_out = self.tokens()
        try:
            if spent_in or spent_out:
                await usage.record_async(**self._event(spent_in, spent_out))
        except SQLAlchemyError:
            self._lost(spent_in, spent_out)
        finally:
            await quota.settle_async(self.admission, tokens=spent_in + spent_out)

    def close(self) -> None:
        """:meth:`aclose` for a request that ended early (a disconnect, a stop)."""
        if not self._claim():
            return
        spent_in, spent_out = self.tokens()
        try:
            if spent_in or spent_out:
                usage.record(**self._event(spent_in, spent_out))
        except SQLAlchemyError:
            self._lost(spent_in, spent_out)
        finally:
            quota.settle(self.admission, tokens=spent_in + spent_out)

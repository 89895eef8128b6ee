"""The engine: one base model serving many LoRA adapters with continuous batching.

Requests for different adapters decode together in one forward pass (batched LoRA, see
:mod:`engine.lora`).
A scheduler task on the event loop keeps the running sequences; between decode steps it admits
waiting requests (prefilled together, then merged into the running batch, see
:mod:`engine.batch`) and drops finished or cancelled ones, so a request never waits for another
to finish. All bookkeeping happens on the event loop; tensors are touched only by one compute
thread, so adapter loading is serialised with the steps for free.

    engine = Engine.load("path/or/hub-id", config=EngineConfig(max_concurrent=16))
    await engine.start()
    await engine.load_adapter("beekeeper-v3", "/data/artifacts/run-17")
    stream = await engine.submit("beekeeper-v3", messages, SamplingParams(max_tokens=200))
    async for delta in stream: ...       # text deltas; stream.finish_reason, stream.usage after
    await engine.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from engine.batch import RunningBatch
from engine.errors import (
    AdapterConflictError,
    AdapterLoadError,
    EngineBusyError,
    EngineError,
    EngineStoppedError,
    GenerationFailedError,
    InvalidRequestError,
    ModelNotFoundError,
)
from engine.model import BASE_ADAPTER, ModelRunner, find_adapter
from engine.protocol import Message, Usage
from engine.sampling import RowSampler, SamplingParams
from engine.text import Detokenizer, StopMatcher, fit_prompt

logger = logging.getLogger(__name__)
FinishReason = Literal["stop", "length", "cancelled", "error"]
NAME = re.compile(r"^[A-Za-z0-9][\w.:/@+-]{0,127}$")
T = TypeVar("T")


@dataclass(frozen=True)
class EngineConfig:
    """Capacity and limits of one engine process."""

    max_concurrent: int = 16  # sequences decoded together
    max_queue: int = 64  # requests waiting for a slot; beyond this: busy (503)
    default_reserve: int = 256  # answer tokens kept free when a request sets no max_tokens
    max_prefill_tokens: int = 8192  # padded prompt tokens prefilled in one forward pass
    # A prefill pass this small costs its fixed overhead, not its tokens: prompts share it
    # whatever their padding (one pass, not several, before the first tokens come out).
    small_prefill_tokens: int = 256
    # Admission rounds before each decode step: requests that arrive while others are being
    # prefilled are prefilled too before the step (prefill first), up to this many rounds.
    prefill_rounds: int = 2
    # Chats up to this many characters are tokenized on the event loop (well under a
    # millisecond); longer ones on the prepare thread. A hop to a thread costs more than that
    # while a step runs: each thread switch waits for the compute thread to let go of the GIL.
    inline_prompt_chars: int = 4000
    # sys.setswitchinterval while the engine runs (None: leave it): the longest the event loop
    # waits for the GIL while the compute thread runs Python between kernels (Python's default
    # is 5 ms, which a request arriving mid-step would wait, once per thread switch).
    gil_switch_interval: float | None = 0.001
    max_adapters: int = 64
    adapters_dir: Path | None = None  # adapter paths resolve inside it (and must stay inside)

    def __post_init__(self) -> None:
        positive = ("max_concurrent", "default_reserve", "max_prefill_tokens", "max_adapters")
        for name in (*positive, "prefill_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_queue", "small_prefill_tokens", "inline_prompt_chars"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, got {getattr(self, name)}")
        if self.gil_switch_interval is not None and self.gil_switch_interval <= 0:
            raise ValueError(f"gil_switch_interval must be above 0, got {self.gil_switch_interval}")


@dataclass
class Adapter:
    """A loaded adapter, as the scheduler sees it."""

    name: str  # public: the ``model`` of a request
    internal: str  # peft's adapter name
    path: Path
    chat_template: str | None
    users: int = 0  # sequences waiting or running with it
    retiring: bool = False  # unloaded: weights are freed when the last user finishes


@dataclass(frozen=True)
class ModelCard:
    """A servable model: the base, or an adapter on it."""

    id: str
    parent: str | None  # the base model's name, for adapters
    max_model_len: int


@dataclass
class _End:
    """The last event of a stream."""

    reason: FinishReason
    error: EngineError | None = None


@dataclass(eq=False)
class Generation:
    """One request from admission to its last token. Owned by the event loop."""

    id: str
    model: str
    adapter: Adapter | None
    prompt: list[int]
    params: SamplingParams
    limit: int  # tokens it may generate (max_tokens, or what the context leaves)
    sampler: RowSampler
    detokenizer: Detokenizer
    stops: StopMatcher
    tokens: list[int] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.perf_counter)  # when submit() was called
    first_token_at: float | None = None  # time.perf_counter() of the first generated token
    events: asyncio.Queue[str | _End] = field(default_factory=asyncio.Queue)
    finish_reason: FinishReason | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def internal_adapter(self) -> str:
        return self.adapter.internal if self.adapter else BASE_ADAPTER


class Stream:
    """What :meth:`Engine.submit` returns: an async iterator of text deltas.

    After iteration, :attr:`finish_reason` is ``stop``, ``length`` or ``cancelled`` and
    :attr:`usage` holds the token counts; a failure during generation is raised from the loop.
    """

    def __init__(self, sequence: Generation, engine: Engine):
        self._sequence = sequence
        self._engine = engine

    @property
    def id(self) -> str:
        return self._sequence.id

    @property
    def model(self) -> str:
        return self._sequence.model

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._sequence.finish_reason

    @property
    def token_ids(self) -> list[int]:
        return list(self._sequence.tokens)

    @property
    def usage(self) -> Usage:
        return Usage(len(self._sequence.prompt), len(self._sequence.tokens))

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from submission to the first generated token (None before it)."""
        first = self._sequence.first_token_at
        return None if first is None else first - self._sequence.submitted_at

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        event = await self._sequence.events.get()
        if isinstance(event, str):
            return event
        self._sequence.events.put_nowait(event)  # later calls end too
        if event.error is not None:
            raise event.error
        raise StopAsyncIteration

    async def text(self) -> str:
        """The whole answer (consumes the stream)."""
        return "".join([delta async for delta in self])

    def cancel(self) -> None:
        """Stop generating; the slot is freed before the next step."""
        self._engine.cancel(self._sequence)


class Engine:
    """Serves the base model and its adapters; every method runs on one event loop."""

    def __init__(self, runner: ModelRunner, *, name: str, config: EngineConfig | None = None):
        self.runner = runner
        self.name = name
        self.config = config or EngineConfig()
        self._adapters: dict[str, Adapter] = {}
        self._internal_names = (f"adapter{n}" for n in itertools.count(1))
        self._waiting: deque[Generation] = deque()
        self._rows: list[Generation] = []  # aligned with the running batch's rows
        self._prefilling: list[Generation] = []  # admitted, in the prefill pass now
        self._batch = RunningBatch(runner)
        self._compute = ThreadPoolExecutor(1, thread_name_prefix="engine-compute")
        self._prepare = ThreadPoolExecutor(1, thread_name_prefix="engine-prepare")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._counts = dict.fromkeys(("completed", "cancelled", "failed", "rejected"), 0)
        self._switch_interval: float | None = None  # the process's, restored at stop

    @classmethod
    def load(
        cls,
        base: str,
        *,
        name: str | None = None,
        config: EngineConfig | None = None,
        max_model_len: int | None = None,
    ) -> Engine:
        """Load the base model (blocking: call before serving)."""
        runner = ModelRunner.load(base, max_model_len=max_model_len)
        return cls(runner, name=name or base, config=config)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the scheduler on the running event loop."""
        if self._task is None:
            if self.config.gil_switch_interval is not None:
                self._switch_interval = sys.getswitchinterval()
                sys.setswitchinterval(self.config.gil_switch_interval)
            self._task = asyncio.create_task(self._schedule(), name="engine-scheduler")
            self._task.add_done_callback(self._scheduler_ended)

    async def stop(self) -> None:
        """Fail what is waiting or running, stop the scheduler and the threads."""
        self._stopped = True
        self._fail_all(EngineStoppedError("the engine is shutting down"))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._compute.shutdown(wait=True)
        self._prepare.shutdown(wait=True)
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    @property
    def healthy(self) -> bool:
        """Whether the scheduler is running."""
        return self._task is not None and not self._task.done() and not self._stopped

    def stats(self) -> dict[str, int]:
        """Sequences running and waiting, adapters loaded, and requests ended since start
        (completed, cancelled, failed, rejected as busy)."""
        running = sum(1 for s in [*self._rows, *self._prefilling] if not s.done)
        now = {"running": running, "waiting": len(self._waiting), "adapters": len(self._adapters)}
        return {**now, **self._counts}

    # --- adapters -----------------------------------------------------------------------------

    def models(self) -> list[ModelCard]:
        """The base model, then the loaded adapters by name."""
        context = self.runner.max_context
        cards = [ModelCard(self.name, None, context)]
        cards += [ModelCard(n, self.name, context) for n in sorted(self._adapters)]
        return cards

    def adapters(self) -> list[Adapter]:
        """The loaded adapters, by name."""
        return [self._adapters[n] for n in sorted(self._adapters)]

    def adapter_path(self, name: str, path: str | Path | None) -> Path:
        """Where adapter ``name`` loads from: ``path``, or ``adapters_dir/name``.

        A relative ``path`` is looked for inside ``adapters_dir``, then from the working
        directory (as vLLM does); with ``adapters_dir`` set, the result must lie inside it.
        """
        root = self.config.adapters_dir
        if path is None:
            if root is None:
                raise InvalidRequestError("give the adapter's path", param="path")
            path = root / name
        given = Path(path)
        candidates = [given] if given.is_absolute() else [Path.cwd() / given]
        if root is not None and not given.is_absolute():
            candidates.insert(0, root / given)
        resolved = next((c for c in candidates if c.exists()), candidates[0]).resolve()
        if root is not None and not resolved.is_relative_to(root.resolve()):
            raise InvalidRequestError(
                f"adapter path {path} is outside the adapters folder {root}", param="path"
            )
        return resolved

    async def load_adapter(self, name: str, path: str | Path | None = None) -> tuple[Adapter, bool]:
        """Load an adapter under ``name``; (adapter, whether it was newly loaded).

        Loading the same name from the same folder again is a no-op; another folder under a
        taken name is a conflict (unload it first).
        """
        self._check_name(name)
        resolved = self.adapter_path(name, path)
        existing = self._adapters.get(name)
        if existing is not None:
            if existing.path == resolved:
                return existing, False
            raise AdapterConflictError(
                f"adapter {name!r} is already loaded from {existing.path}; unload it first",
                param="name",
            )
        if len(self._adapters) >= self.config.max_adapters:
            raise AdapterConflictError(
                f"{len(self._adapters)} adapters are loaded, the most this engine holds; "
                "unload one first",
                code="too_many_adapters",
            )
        files = await self._run_prepare(find_adapter, resolved)
        adapter = Adapter(name, next(self._internal_names), resolved, files.chat_template)
        await self._run_compute(self.runner.add_adapter, adapter.internal, files.path)
        if name in self._adapters:  # loaded concurrently under the same name
            await self._run_compute(self.runner.remove_adapter, adapter.internal)
            return self._adapters[name], False
        self._adapters[name] = adapter
        logger.info("adapter %s loaded from %s", name, files.path)
        return adapter, True

    def _check_name(self, name: str) -> None:
        if not NAME.match(name):
            raise InvalidRequestError(
                f"adapter name {name!r} must be 1-128 letters, digits or ._:/@+- and start with a "
                "letter or digit",
                param="name",
            )
        if name == self.name:
            raise AdapterConflictError(f"{name!r} is the base model's name", param="name")

    async def unload_adapter(self, name: str) -> None:
        """Stop serving ``name`` at once; its weights go when no sequence uses them."""
        adapter = self._adapters.pop(name, None)
        if adapter is None:
            raise ModelNotFoundError(f"no adapter named {name!r} is loaded", param="name")
        adapter.retiring = True
        if adapter.users == 0:
            await self._run_compute(self.runner.remove_adapter, adapter.internal)
        logger.info("adapter %s unloaded", name)

    async def load_adapters_dir(self, folder: Path) -> list[str]:
        """Load every adapter folder directly inside ``folder`` under its folder name (other
        folders are passed over)."""
        loaded = []
        for child in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not any((c / "adapter_config.json").is_file() for c in (child, child / "adapter")):
                continue
            try:
                await self.load_adapter(child.name, child)
            except (AdapterLoadError, InvalidRequestError, AdapterConflictError) as error:
                logger.warning("skipping %s: %s", child, error)
                continue
            loaded.append(child.name)
        return loaded

    def _release(self, sequence: Generation) -> None:
        adapter = sequence.adapter
        if adapter is None:
            return
        adapter.users -= 1
        if adapter.retiring and adapter.users == 0:
            future = asyncio.get_running_loop().run_in_executor(
                self._compute, self.runner.remove_adapter, adapter.internal
            )
            future.add_done_callback(_log_failure)

    # --- requests -----------------------------------------------------------------------------

    def _resolve(self, model: str) -> Adapter | None:
        if model == self.name:
            return None
        adapter = self._adapters.get(model)
        if adapter is None:
            raise ModelNotFoundError(
                f"the model {model!r} does not exist or is not loaded; GET /v1/models lists "
                "those served",
                param="model",
            )
        return adapter

    def _check_capacity(self) -> None:
        if self._stopped:
            raise EngineStoppedError("the engine is shutting down")
        capacity = self.config.max_concurrent + self.config.max_queue
        if self.stats()["running"] + len(self._waiting) >= capacity:
            self._counts["rejected"] += 1
            raise EngineBusyError(
                f"the engine is busy: {self.config.max_concurrent} answers are being generated "
                f"and {len(self._waiting)} are waiting; retry shortly"
            )

    async def submit(
        self, model: str, messages: Sequence[Message], params: SamplingParams
    ) -> Stream:
        """Queue a chat request; raises at once when it cannot be served."""
        submitted_at = time.perf_counter()
        adapter = self._resolve(model)
        self._check_capacity()
        if adapter is not None:
            adapter.users += 1
        try:
            if (
                sum(len(m.get("content") or "") for m in messages)
                <= self.config.inline_prompt_chars
            ):
                prompt = self._prompt(messages, params, adapter)
            else:
                prompt = await self._run_prepare(self._prompt, messages, params, adapter)
            self._check_capacity()
        except BaseException:
            if adapter is not None:
                adapter.users -= 1
            raise
        sequence = self._new_sequence(model, adapter, prompt, params)
        sequence.submitted_at = submitted_at  # time to first token includes the tokenizing
        self._waiting.append(sequence)
        self._wake.set()
        return Stream(sequence, self)

    def _prompt(
        self, messages: Sequence[Message], params: SamplingParams, adapter: Adapter | None
    ) -> list[int]:
        """Prompt ids of the newest turns that fit (runs on the prepare thread)."""
        context = self.runner.max_context
        if params.max_tokens is not None and params.max_tokens >= context:
            raise InvalidRequestError(
                f"max_tokens {params.max_tokens} leaves no room for the messages in the "
                f"context window of {context} tokens; lower it",
                param="max_tokens",
            )
        reserve = params.max_tokens or min(self.config.default_reserve, context // 2)
        template = adapter.chat_template if adapter else None
        tokenizer = self.runner.tokenizer
        return fit_prompt(messages, tokenizer, context, reserve, chat_template=template)[1]

    def _new_sequence(
        self, model: str, adapter: Adapter | None, prompt: list[int], params: SamplingParams
    ) -> Generation:
        room = self.runner.max_context - len(prompt)
        return Generation(
            id=uuid.uuid4().hex,
            model=model,
            adapter=adapter,
            prompt=prompt,
            params=params,
            limit=min(params.max_tokens or room, room),
            sampler=RowSampler.create(params, self.runner.device),
            detokenizer=Detokenizer(self.runner.tokenizer),
            stops=StopMatcher(params.stop),
        )

    def cancel(self, sequence: Generation) -> None:
        """Stop ``sequence``: out of the queue now, out of the batch before the next step."""
        if sequence.done:
            return
        if sequence in self._waiting:
            self._waiting.remove(sequence)
        self._finish(sequence, "cancelled")

    # --- the scheduler ------------------------------------------------------------------------

    async def _schedule(self) -> None:
        while True:
            await self._wait_for_work()
            await self._prefill_waiting()
            if any(not s.done for s in self._rows):
                await self._decode()

    async def _prefill_waiting(self) -> None:
        """Prefill the waiting requests that fit before the next decode step.

        Prefill comes first: a new request's first token then waits for at most the step
        running when it came, not for a queue of steps. Requests that arrive during these
        passes are admitted too, for up to ``prefill_rounds`` rounds, so that a stream of
        arrivals cannot hold the running rows' next tokens back for long.
        """
        small = self.config.small_prefill_tokens
        for _ in range(self.config.prefill_rounds):
            admitted = self._admit()
            if not admitted:
                return
            for group in prefill_groups(admitted, small=small):
                await self._prefill(group)

    async def _wait_for_work(self) -> None:
        while not self._waiting and all(s.done for s in self._rows):
            self._wake.clear()
            await self._wake.wait()

    def _admit(self) -> list[Generation]:
        """Waiting sequences that fit the free slots and the prefill budget, oldest first."""
        free = self.config.max_concurrent - sum(1 for s in self._rows if not s.done)
        admitted: list[Generation] = []
        width = 0
        while self._waiting and len(admitted) < free:
            width = max(width, len(self._waiting[0].prompt))
            over_budget = (len(admitted) + 1) * width > self.config.max_prefill_tokens
            if admitted and over_budget:
                break
            admitted.append(self._waiting.popleft())
        return admitted

    def _retain_live(self) -> list[int]:
        keep = [i for i, s in enumerate(self._rows) if not s.done]
        self._rows = [self._rows[i] for i in keep]
        return keep

    async def _prefill(self, admitted: list[Generation]) -> None:
        prompts = [s.prompt for s in admitted]
        adapters = [s.internal_adapter for s in admitted]
        samplers = [s.sampler for s in admitted]

        def work() -> list[int]:
            # Only the new rows' pass: they join the cache (and finished rows leave it) at
            # the next step, after their first tokens are out.
            return self._batch.prefill(prompts, adapters, samplers)

        self._prefilling = admitted  # counted as running, and failed if the scheduler dies
        tokens = await self._compute_or_fail(work, admitted)
        self._prefilling = []
        if tokens is None:
            return
        self._rows += admitted
        self._deliver(admitted, tokens)

    async def _decode(self) -> None:
        keep = self._retain_live()
        samplers = [s.sampler for s in self._rows]

        def work() -> list[int]:
            self._batch.retain(keep)
            return self._batch.decode(samplers)

        rows = list(self._rows)
        tokens = await self._compute_or_fail(work, rows)
        if tokens is None:
            self._rows = []
            await self._run_compute(self._batch.clear)
            return
        self._deliver(rows, tokens)

    async def _compute_or_fail(
        self, work: Callable[[], list[int]], sequences: list[Generation]
    ) -> list[int] | None:
        """Run ``work`` on the compute thread; on a model failure, fail ``sequences``."""
        try:
            return await self._run_compute(work)
        except (RuntimeError, ValueError) as error:  # torch reports OOM and device errors so
            logger.exception("generation failed for %d sequences", len(sequences))
            failure = GenerationFailedError(f"generation failed: {error}")
            for sequence in sequences:
                self._finish(sequence, "error", failure)
            return None

    def _deliver(self, sequences: list[Generation], tokens: list[int]) -> None:
        for sequence, token in zip(sequences, tokens, strict=True):
            if not sequence.done:
                self._accept(sequence, token)

    def _accept(self, sequence: Generation, token: int) -> None:
        """Record one generated token: emit its text, or finish the sequence."""
        sequence.tokens.append(token)
        if sequence.first_token_at is None:
            sequence.first_token_at = time.perf_counter()
        if token in self.runner.eos_ids:
            self._finish(sequence, "stop")
            return
        text, stopped = sequence.stops.feed(sequence.detokenizer.push(token))
        self._emit(sequence, text)
        if stopped:
            self._finish(sequence, "stop", flush=False)
        elif len(sequence.tokens) >= sequence.limit:
            self._finish(sequence, "length")

    def _emit(self, sequence: Generation, text: str) -> None:
        if text:
            sequence.events.put_nowait(text)

    def _finish(
        self,
        sequence: Generation,
        reason: FinishReason,
        error: EngineError | None = None,
        *,
        flush: bool = True,
    ) -> None:
        """End ``sequence``; with ``flush``, emit the text held back (unless it holds a stop)."""
        if flush and reason in ("stop", "length"):
            text, stopped = sequence.stops.feed(sequence.detokenizer.flush())
            self._emit(sequence, text if stopped else text + sequence.stops.flush())
        sequence.finish_reason = reason
        sequence.events.put_nowait(_End(reason, error))
        outcome = {"stop": "completed", "length": "completed", "cancelled": "cancelled"}
        self._counts[outcome.get(reason, "failed")] += 1
        self._release(sequence)

    def _fail_all(self, error: EngineError) -> None:
        for sequence in [*self._waiting, *self._prefilling, *self._rows]:
            if not sequence.done:
                self._finish(sequence, "error", error)
        self._waiting.clear()

    def _scheduler_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            logger.error("the scheduler stopped", exc_info=task.exception())
            self._stopped = True
            self._fail_all(EngineStoppedError("the engine's scheduler stopped; restart it"))

    # --- threads ------------------------------------------------------------------------------

    async def _run_compute(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._compute, function, *args)

    async def _run_prepare(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._prepare, function, *args)


def prefill_groups(
    sequences: list[Generation], *, waste: float = 0.25, small: int = 0
) -> list[list[Generation]]:
    """Split admitted sequences, shortest first, into groups that are prefilled together.

    A group is left-padded to its longest prompt; a prompt joins the group unless padding
    would then exceed ``waste`` of the group's real tokens (one more pass costs less than
    much padding), or the padded group stays within ``small`` tokens (a pass that small
    costs about the same whatever its padding). Short prompts go first, so their first
    tokens come soonest.
    """
    groups: list[list[Generation]] = []
    real = 0
    for sequence in sorted(sequences, key=lambda s: len(s.prompt)):
        length = len(sequence.prompt)
        padded = (len(groups[-1]) + 1) * length if groups else 0
        if groups and (padded <= small or padded <= (real + length) * (1 + waste)):
            groups[-1].append(sequence)
            real += length
        else:
            groups.append([sequence])
            real = length
    return groups


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("freeing an adapter failed", exc_info=future.exception())

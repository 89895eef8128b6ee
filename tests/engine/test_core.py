"""The engine end to end in one process: continuous batching across adapters, streaming,
cancellation, back-pressure, stops, seeds, usage and adapter management."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from engine.core import Engine, Stream, prefill_groups
from engine.errors import (
    AdapterConflictError,
    AdapterLoadError,
    EngineBusyError,
    EngineStoppedError,
    GenerationFailedError,
    InvalidRequestError,
    ModelNotFoundError,
)
from engine.model import BASE_ADAPTER, check_adapter_config
from engine.sampling import SamplingParams
from engine.text import encode_chat
from tests.engine.conftest import BASE_NAME, EngineFactory

pytestmark = pytest.mark.timeout(120)
QUESTION = "What colour is the hive door?"
OTHER = "Tell me about bees"


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def greedy(max_tokens: int, **changes: Any) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=max_tokens, **changes)


def alone(engine: Engine, model: str, question: str, max_tokens: int) -> list[int]:
    """Greedy tokens from peft's ``generate`` for one sequence (call while the engine idles)."""
    from trainer.modeling import quiet_peft

    runner = engine.runner
    ids = encode_chat(chat(question), runner.tokenizer)
    internal = {a.name: a.internal for a in engine.adapters()}.get(model, BASE_ADAPTER)
    kwargs = {"max_new_tokens": max_tokens, "do_sample": False, "eos_token_id": None}
    with torch.inference_mode(), quiet_peft():
        out = runner.model.generate(
            input_ids=torch.tensor([ids]), adapter_names=[internal], **kwargs
        )
    return list(out[0, len(ids) :].tolist())


async def first_delta(stream: Stream) -> str:
    return await anext(aiter(stream))


@pytest.mark.asyncio
async def test_concurrent_requests_for_different_adapters_match_each_alone(
    engine: Engine,
) -> None:
    requests = [("alpha", QUESTION), ("beta", QUESTION), (BASE_NAME, OTHER), ("alpha", OTHER)]
    expected = [alone(engine, model, question, 12) for model, question in requests]

    streams = [await engine.submit(m, chat(q), greedy(12)) for m, q in requests]
    texts = await asyncio.gather(*(s.text() for s in streams))

    assert [s.token_ids for s in streams] == expected
    for stream, text in zip(streams, texts, strict=True):
        assert text == engine.runner.tokenizer.decode(stream.token_ids, skip_special_tokens=True)
        assert stream.finish_reason == "length"
        assert stream.usage.completion_tokens == 12


@pytest.mark.asyncio
async def test_a_request_joins_while_another_is_decoding(engine: Engine) -> None:
    expected_long = alone(engine, "alpha", QUESTION, 60)
    expected_short = alone(engine, "beta", OTHER, 10)

    long = await engine.submit("alpha", chat(QUESTION), greedy(60))
    await first_delta(long)
    assert engine.stats()["running"] == 1
    short = await engine.submit("beta", chat(OTHER), greedy(10))
    await short.text()
    assert long.finish_reason is None  # the short one finished while the long one ran
    await long.text()

    assert short.token_ids == expected_short
    assert long.token_ids == expected_long


@pytest.mark.asyncio
async def test_cancel_frees_the_slot_and_a_full_queue_is_busy(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(max_concurrent=1, max_queue=1)
    running = await engine.submit(BASE_NAME, chat(QUESTION), greedy(900))
    queued = await engine.submit("alpha", chat(OTHER), greedy(5))  # whatever state the first is in
    with pytest.raises(EngineBusyError, match="busy"):
        await engine.submit("beta", chat(OTHER), greedy(5))
    await first_delta(running)

    running.cancel()
    assert (await queued.text()) is not None  # it got the freed slot
    assert queued.finish_reason == "length"
    assert running.finish_reason == "cancelled"
    assert len(running.token_ids) < 900
    stats = engine.stats()
    assert (stats["running"], stats["waiting"], stats["cancelled"], stats["rejected"]) == (
        0,
        0,
        1,
        1,
    )


@pytest.mark.asyncio
async def test_cancelling_a_waiting_request_frees_its_queue_place(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(max_concurrent=1, max_queue=1)
    running = await engine.submit(BASE_NAME, chat(QUESTION), greedy(900))
    await first_delta(running)
    queued = await engine.submit("alpha", chat(OTHER), greedy(5))
    queued.cancel()
    assert await queued.text() == ""
    replacement = await engine.submit("alpha", chat(OTHER), greedy(5))  # not busy
    running.cancel()
    await replacement.text()
    assert replacement.finish_reason == "length"


@pytest.mark.asyncio
async def test_stop_string_cuts_the_answer(engine: Engine) -> None:
    full = await (await engine.submit("alpha", chat(QUESTION), greedy(20))).text()
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip() and stop not in full[: len(full) // 2]

    stream = await engine.submit("alpha", chat(QUESTION), greedy(20, stop=(stop,)))
    assert await stream.text() == full[: full.index(stop)]
    assert stream.finish_reason == "stop"
    assert stream.usage.completion_tokens < 20


@pytest.mark.asyncio
async def test_a_seed_reproduces_a_sampled_answer_in_any_batch(engine: Engine) -> None:
    params = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=15, seed=1234)
    first = await engine.submit("beta", chat(QUESTION), params)
    await first.text()
    others = [await engine.submit("alpha", chat(OTHER), greedy(15)) for _ in range(2)]
    again = await engine.submit("beta", chat(QUESTION), params)
    other_seed = await engine.submit("beta", chat(QUESTION), SamplingParams(seed=99, max_tokens=15))
    await asyncio.gather(again.text(), other_seed.text(), *(o.text() for o in others))
    assert again.token_ids == first.token_ids
    assert other_seed.token_ids != first.token_ids


@pytest.mark.asyncio
async def test_usage_counts_prompt_and_answer_tokens(engine: Engine) -> None:
    stream = await engine.submit("beta", chat(OTHER), greedy(7))
    await stream.text()
    prompt = encode_chat(chat(OTHER), engine.runner.tokenizer)
    assert stream.usage.prompt_tokens == len(prompt)
    assert stream.usage.completion_tokens == len(stream.token_ids) == 7
    assert stream.usage.total_tokens == len(prompt) + 7


@pytest.mark.asyncio
async def test_a_long_conversation_is_trimmed_to_the_context(engine: Engine) -> None:
    history = [{"role": "system", "content": "You keep bees."}]
    for n in range(60):
        history += [
            {"role": "user", "content": f"Question {n} about the hive and the queen?"},
            {"role": "assistant", "content": f"Answer {n}: the queen is called Beatrice."},
        ]
    history.append({"role": "user", "content": QUESTION})
    stream = await engine.submit("alpha", history, greedy(100))
    await stream.text()
    assert stream.usage.prompt_tokens + 100 <= engine.runner.max_context


@pytest.mark.asyncio
async def test_requests_that_cannot_be_served_fail_at_submit(engine: Engine) -> None:
    with pytest.raises(ModelNotFoundError):
        await engine.submit("no-such-adapter", chat(QUESTION), greedy(5))
    context = engine.runner.max_context
    with pytest.raises(InvalidRequestError) as caught:
        await engine.submit("alpha", chat(QUESTION), greedy(context))
    assert caught.value.param == "max_tokens"


@pytest.mark.asyncio
async def test_unloading_lets_running_answers_finish(engine: Engine) -> None:
    stream = await engine.submit("beta", chat(QUESTION), greedy(30))
    await first_delta(stream)
    await engine.unload_adapter("beta")
    assert "beta" not in [card.id for card in engine.models()]
    with pytest.raises(ModelNotFoundError):
        await engine.submit("beta", chat(QUESTION), greedy(5))
    await stream.text()
    assert stream.finish_reason == "length"
    await asyncio.sleep(0.05)  # the weights are freed on the compute thread
    assert len(engine.runner.adapters) == 1


@pytest.mark.asyncio
async def test_adapter_loading_rules(
    engine: Engine, adapters_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter, created = await engine.load_adapter("alpha")
    assert not created and adapter.path == (adapters_dir / "alpha").resolve()
    with pytest.raises(AdapterConflictError):
        await engine.load_adapter("alpha", "beta")
    with pytest.raises(InvalidRequestError, match="outside"):
        await engine.load_adapter("stray", tmp_path)
    with pytest.raises(AdapterLoadError, match="no adapter"):
        await engine.load_adapter("missing")
    with pytest.raises(InvalidRequestError, match="adapter name"):
        await engine.load_adapter("../etc")
    monkeypatch.chdir(adapters_dir.parent)  # vLLM's rule: relative to the working directory
    _, created = await engine.load_adapter("beta-again", f"{adapters_dir.name}/beta")
    assert created
    copy = shutil.copytree(adapters_dir / "beta", adapters_dir / "beta-copy")
    try:
        _, created = await engine.load_adapter("beta-copy")
    finally:
        shutil.rmtree(copy)
    assert created and "beta-copy" in [card.id for card in engine.models()]


@pytest.mark.asyncio
async def test_the_base_serves_after_every_adapter_is_unloaded_and_reloads(
    engine: Engine,
) -> None:
    expected_base = alone(engine, BASE_NAME, OTHER, 8)
    expected_alpha = alone(engine, "alpha", OTHER, 8)
    await engine.unload_adapter("alpha")
    await engine.unload_adapter("beta")
    base = await engine.submit(BASE_NAME, chat(OTHER), greedy(8))
    await base.text()
    assert base.token_ids == expected_base
    await engine.load_adapter("alpha")
    again = await engine.submit("alpha", chat(OTHER), greedy(8))
    await again.text()
    assert again.token_ids == expected_alpha


@pytest.mark.asyncio
async def test_stopping_fails_what_is_queued(make_engine: EngineFactory) -> None:
    engine = await make_engine(max_concurrent=1)
    running = await engine.submit(BASE_NAME, chat(QUESTION), greedy(900))
    queued = await engine.submit("alpha", chat(QUESTION), greedy(5))
    await first_delta(running)
    await engine.stop()
    for stream in (running, queued):
        with pytest.raises(EngineStoppedError):
            await stream.text()
    assert not engine.healthy


def test_prefill_groups_bound_padding_and_go_shortest_first() -> None:
    def generation(length: int) -> Any:
        return SimpleNamespace(prompt=[0] * length)

    lengths = [100, 20, 22, 95, 21, 300]
    groups = prefill_groups([generation(n) for n in lengths])
    assert [[len(g.prompt) for g in group] for group in groups] == [[20, 21, 22], [95, 100], [300]]


def test_small_prefill_passes_take_every_prompt_whatever_the_padding() -> None:
    def generation(length: int) -> Any:
        return SimpleNamespace(prompt=[0] * length)

    lengths = [100, 20, 22, 95, 21, 300]
    groups = prefill_groups([generation(n) for n in lengths], small=400)
    # 4 x 95 padded tokens fit in a small pass; 5 x 100 do not, and pad too much
    assert [[len(g.prompt) for g in group] for group in groups] == [[20, 21, 22, 95], [100], [300]]


@pytest.mark.asyncio
async def test_a_request_arriving_mid_decode_gets_its_first_token_before_the_next_step(
    engine: Engine,
) -> None:
    long = await engine.submit("alpha", chat(QUESTION), greedy(200))
    await first_delta(long)
    short = await engine.submit("beta", chat(OTHER), greedy(5))
    steps_before = len(long.token_ids)  # it waits in the queue now, a step may be under way
    while not short.token_ids:
        await asyncio.sleep(0)
    assert len(long.token_ids) - steps_before <= 1  # at most the step that was under way
    long.cancel()
    await short.text()
    assert short.token_ids == alone(engine, "beta", OTHER, 5)


@pytest.mark.asyncio
async def test_the_gil_switch_interval_is_set_while_running_and_restored(
    make_engine: EngineFactory,
) -> None:
    import sys

    before = sys.getswitchinterval()
    engine = await make_engine(gil_switch_interval=0.002)
    assert sys.getswitchinterval() == pytest.approx(0.002)
    await engine.stop()
    assert sys.getswitchinterval() == pytest.approx(before)


@pytest.mark.parametrize(
    "setting",
    [{"prefill_rounds": 0}, {"small_prefill_tokens": -1}, {"gil_switch_interval": 0.0}],
)
def test_bad_scheduler_settings_are_refused(setting: dict[str, Any]) -> None:
    from engine.core import EngineConfig

    with pytest.raises(ValueError, match=next(iter(setting))):
        EngineConfig(**setting)


def test_dora_and_non_lora_adapters_are_refused(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "use_dora": True})
    )
    with pytest.raises(AdapterLoadError, match="DoRA"):
        check_adapter_config(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(AdapterLoadError, match="only LoRA"):
        check_adapter_config(tmp_path)


@pytest.mark.asyncio
async def test_a_model_failure_fails_its_requests_and_the_engine_goes_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: Any) -> list[int]:
        raise RuntimeError("CUDA out of memory (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(engine._batch, "prefill", out_of_memory)
        doomed = await engine.submit("alpha", chat(QUESTION), greedy(5))
        with pytest.raises(GenerationFailedError, match="out of memory"):
            await doomed.text()
    fine = await engine.submit("alpha", chat(QUESTION), greedy(5))
    await fine.text()
    assert fine.finish_reason == "length" and engine.healthy


@pytest.mark.asyncio
async def test_a_scheduler_crash_fails_requests_instead_of_hanging(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*args: Any) -> list[int]:
        raise KeyError("a bug")

    monkeypatch.setattr(engine._batch, "prefill", bug)
    stream = await engine.submit("alpha", chat(QUESTION), greedy(5))
    with pytest.raises(EngineStoppedError):
        await stream.text()
    assert not engine.healthy
    with pytest.raises(EngineStoppedError):
        await engine.submit("alpha", chat(QUESTION), greedy(5))


@pytest.mark.asyncio
async def test_an_adapter_for_another_base_is_refused_without_a_trace(
    engine: Engine, adapters_dir: Path, foreign_adapter: Path
) -> None:
    expected = alone(engine, "alpha", QUESTION, 8)
    folder = shutil.copytree(foreign_adapter, adapters_dir / foreign_adapter.name)
    try:
        with pytest.raises(AdapterLoadError, match="size mismatch"):
            await engine.load_adapter(folder.name)
    finally:
        shutil.rmtree(folder)
    assert folder.name not in [card.id for card in engine.models()]
    stream = await engine.submit("alpha", chat(QUESTION), greedy(8))
    await stream.text()
    assert stream.token_ids == expected


@pytest.mark.asyncio
async def test_an_adapter_saved_with_its_own_chat_template_uses_it(
    engine: Engine, adapters_dir: Path
) -> None:
    folder = shutil.copytree(adapters_dir / "alpha", adapters_dir / "templated")
    template = "{% for m in messages %}### {{ m['content'] }}\n{% endfor %}### Answer:\n"
    (folder / "chat_template.jinja").write_text(template)
    try:
        await engine.load_adapter("templated")
    finally:
        shutil.rmtree(folder)
    stream = await engine.submit("templated", chat(QUESTION), greedy(3))
    await stream.text()
    tokenizer = engine.runner.tokenizer
    own = encode_chat(chat(QUESTION), tokenizer, chat_template=template)
    assert tokenizer.decode(own) == f"### {QUESTION}\n### Answer:"  # jinja drops the last \n
    assert stream.usage.prompt_tokens == len(own) != len(encode_chat(chat(QUESTION), tokenizer))

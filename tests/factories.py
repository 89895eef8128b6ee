"""Shared test data: a published assistant whose live version is a given adapter folder."""

from __future__ import annotations

from dataclasses import dataclass

from gptstudio.db import session_scope
from gptstudio.models import Assistant, ModelVersion
from gptstudio.models.user import UserPublic
from gptstudio.services import assistant


@dataclass(frozen=True)
class Published:
    assistant_id: int
    version_id: int
    slug: str


def publish_assistant(
    owner: UserPublic,
    name: str = "Bee Mentor",
    *,
    adapter_path: str = "/adapters/1",
    system_prompt: str = "",
    rag_top_k: int | None = None,
) -> Published:
    """A new assistant of ``owner``, published with version 1 served from ``adapter_path``
    (``rag_top_k``: retrieval on with that many passages)."""
    made = assistant.create_assistant(actor=owner, name=name)
    with session_scope() as session:
        version = ModelVersion(
            assistant_id=made.id, version=1, base_model="tiny", status="published",
            adapter_path=adapter_path,
        )  # fmt: skip
        session.add(version)
        session.flush()
        row = session.get(Assistant, made.id)
        assert row is not None
        row.is_published, row.current_model_version_id = True, version.id
        row.system_prompt = system_prompt
        if rag_top_k is not None:
            row.rag_enabled, row.rag_top_k = True, rag_top_k
        return Published(made.id, version.id or 0, made.slug)

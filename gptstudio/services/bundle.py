"""Export bundles: one download per model version, and importing one into another installation.

A bundle is one uncompressed tar holding a folder::

    manifest.json     format, assistant (name, persona, welcome, starters, retrieval settings),
                      model version (number, evaluation numbers, gate), base model (name and
                      fingerprint), dataset version (number, content hash, counts), GGUF check,
                      and the SHA-256 and size of every other file
    adapter/          the PEFT adapter folder as training wrote it
    merged/           base + adapter merged: safetensors, tokenizer, chat template
    model.gguf        the merged model for llama.cpp and Ollama (Llama-architecture models)
    Modelfile         ``ollama create NAME -f Modelfile`` next to model.gguf
    retrieval/        index.npz (MiniLM vectors + provenance) and chunks.jsonl (the chunks' text)

**Why a job and a file, not a zip streamed on the fly.** A bundle of a 7B model is ~15 GB of
merged safetensors plus as much GGUF, and producing them means merging on a worker (minutes).
That cannot happen inside an HTTP request, and a streamed zip could not be resumed or served
twice. So the worker builds the bundle (:mod:`gptstudio.jobs.bundle`) with its progress on the
version row (the training page shows it), and the download streams the finished file from disk
(``FileResponse``: chunked, with ``Range`` support so an interrupted download resumes). Tar, not
zip: weights do not compress, and tar streams in and out without a central directory.

**Import** (:func:`import_bundle`) extracts with tar's ``data`` filter (no absolute paths, no
``..``, no links out, no devices), checks every file against the manifest's checksums (a changed,
missing or added file refuses the whole bundle, naming the file), checks that this installation
offers the bundle's base model (by name, or by the fingerprint of the same weights under another
path), then recreates the assistant, owned by the importing creator, with the version published.
Checksums prove integrity, not origin: whoever can change the files can change the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import tarfile
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, ModelNotFound, NotFound
from gptstudio.models import Assistant, ModelVersion, Role
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, training
from gptstudio.services.access import Client, authorize
from gptstudio.services.assistant import owned_assistant, slugify
from gptstudio.services.retrieval import index_path
from gptstudio.settings import get_settings

FORMAT = "gptstudio-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
READ_CHUNK = 1 << 20
STALE_EXPORT = timedelta(minutes=30)
"""A queued or running export whose worker wrote nothing for this long may be started again."""
FINGERPRINT_BYTES = 1 << 20
"""Bytes of each weights file's tensor data that go into a base model's fingerprint (with its
header and config): enough to tell different weights apart, cheap for a 15 GB model."""


class BundleRejected(DomainError):
    """The bundle cannot be imported as it is; the message says why and what to do."""

    status_code = 400
    type = "invalid_request_error"
    code = "bundle_rejected"


class BaseModelMissing(DomainError):
    status_code = 409
    type = "invalid_request_error"
    code = "base_model_missing"


# --- files and checksums ----------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` for every file under ``folder`` but the manifest."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {
        path.relative_to(folder).as_posix(): {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
        for path in files
        if path.relative_to(folder).as_posix() != MANIFEST
    }


def base_fingerprint(base_model: str) -> str | None:
    """A SHA-256 over a local base model's architecture, tokenizer and the first MiB of each
    weights file (after its header); ``None`` for a hub id not downloaded to a folder."""
    folder = Path(base_model).expanduser()
    if not (folder / "config.json").is_file():
        return None
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    keys = (
        "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "vocab_size", "head_dim",
    )  # fmt: skip
    digest = hashlib.sha256(json.dumps({k: config.get(k) for k in keys}, sort_keys=True).encode())
    if (folder / "tokenizer.json").is_file():
        digest.update((folder / "tokenizer.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        with weights.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            digest.update(handle.read(length))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()


# --- export (the web side; the job is gptstudio.jobs.bundle) -----------------------------------


def bundle_name(assistant_slug: str, version: int) -> str:
    return f"{assistant_slug}-v{version}-bundle"


def archive_path(bundle_dir: str | Path) -> Path:
    """The tar of a bundle folder (beside it)."""
    folder = Path(bundle_dir)
    return folder.with_name(f"{folder.name}.tar")


def _building(progress: dict[str, Any]) -> bool:
    """A build is queued or running, and its worker spoke recently (a dead one's can be
    restarted)."""
    if progress.get("state") not in ("queued", "running"):
        return False
    try:
        updated = datetime.fromisoformat(str(progress.get("updated_at")))
    except ValueError:
        return False
    return utcnow() - updated < STALE_EXPORT


def request_export(*, actor: UserPublic, version_id: int) -> None:
    """Queue building the version's bundle; its progress shows on the version row."""
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise ModelNotFound("There is no such model version.")
        owned_assistant(session, actor=actor, assistant_id=version.assistant_id)
        if _building(version.export_progress):
            return  # one build at a time; the page already shows its progress
        version.export_progress = {
            "state": "queued", "step": "waiting for a worker", "fraction": 0,
            "updated_at": utcnow().isoformat(),
        }  # fmt: skip
    from gptstudio.jobs.tasks import export_task

    export_task(version_id)


def export_archive(*, actor: UserPublic, version_id: int) -> Path:
    """The finished bundle of a version, for its owner (what the download serves)."""
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise ModelNotFound("There is no such model version.")
        owned_assistant(session, actor=actor, assistant_id=version.assistant_id)
        exported = version.export_path
    archive = archive_path(exported) if exported else None
    if archive is None or not archive.is_file():
        raise NotFound("This version has no export yet. Export it first.")
    return archive


# --- import -----------------------------------------------------------------------------------


class BundleUpload:
    """A bundle arriving in chunks (an HTTP body, a browser upload), written to disk as they
    come: a bundle is gigabytes and is never held in memory."""

    def __init__(self) -> None:
        folder = get_settings().artifacts_dir / "imports" / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{uuid.uuid4().hex}.tar"
        self._handle = self.path.open("wb")
        self.size = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self.size += len(data)

    def finish(self) -> Path:
        self._handle.close()
        if not self.size:
            self.discard()
            raise InvalidInput("Send the bundle (.tar) as the request body.")
        return self.path

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


Step = Callable[[str, float], None]


def _no_step(step: str, fraction: float) -> None:
    return None


def _extract(archive: Path, into: Path) -> Path:
    """Unpack safely; the bundle's one top-level folder (or ``into`` if files sit at the top)."""
    try:
        with tarfile.open(archive, "r:*") as packed:
            packed.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BundleRejected(
            f"This file is not a readable bundle (a .tar from a GPT Studio export): {error}"
        ) from None
    folders = [p for p in into.iterdir()]
    root = folders[0] if len(folders) == 1 and folders[0].is_dir() else into
    if not (root / MANIFEST).is_file():
        raise BundleRejected("This archive has no manifest.json: it is not a GPT Studio bundle.")
    return root


def _manifest(root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleRejected(f"The bundle's manifest.json is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleRejected("manifest.json is not a GPT Studio bundle manifest.")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleRejected(
            f"This bundle has format version {manifest.get('format_version')}; this installation "
            f"reads up to {FORMAT_VERSION}. Upgrade GPT Studio to import it."
        )
    return manifest


def verify(root: Path, manifest: dict[str, Any], step: Step = _no_step) -> None:
    """Every file the manifest lists is there with its checksum, and no other file is."""
    listed: dict[str, Any] = manifest.get("files") or {}
    if any(Path(name).is_absolute() or ".." in Path(name).parts for name in listed):
        raise BundleRejected("The bundle's manifest names files outside the bundle.")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    present.discard(MANIFEST)
    if missing := sorted(set(listed) - present):
        raise BundleRejected(f"The bundle is incomplete: {', '.join(missing[:5])} is missing.")
    if added := sorted(present - set(listed)):
        raise BundleRejected(
            f"The bundle was changed after export: {', '.join(added[:5])} is not in its manifest."
        )
    total = sum(int(entry.get("bytes", 0)) for entry in listed.values()) or 1
    done = 0
    for name, entry in sorted(listed.items()):
        path = root / name
        if path.stat().st_size != int(entry.get("bytes", -1)) or sha256_file(path) != entry.get(
            "sha256"
        ):
            raise BundleRejected(
                f"The bundle was changed or damaged after export: {name} does not match its "
                "checksum. Download the bundle again from its source."
            )
        done += path.stat().st_size
        step("checking checksums", done / total)


def match_base_model(manifest: dict[str, Any]) -> str:
    """The name under which this installation offers the bundle's base model."""
    base = manifest.get("base_model") or {}
    name, fingerprint = str(base.get("name", "")), base.get("fingerprint")
    offered = [entry["key"] for entry in training.base_models()]
    for key in offered:
        local = base_fingerprint(key)
        if key == name:
            if fingerprint and local and local != fingerprint:
                raise BaseModelMissing(
                    f"This installation's base model {key} has other weights than the one the "
                    "bundle was trained on; its adapter would not work on it."
                )
            return key
        if fingerprint and local == fingerprint:
            return key
    shown = Path(name).name if Path(name).is_absolute() else name
    raise BaseModelMissing(
        f"This bundle was trained on the base model {shown!r}, which this installation does not "
        "offer. Configure it (GPTSTUDIO_BASE_MODEL, or the same weights under another path) "
        "and import the bundle again."
    )


def _unique_slug(session: Any, name: str) -> str:
    slug = base = slugify(name)
    while session.exec(select(Assistant.id).where(Assistant.slug == slug)).first() is not None:
        slug = f"{base}-{uuid.uuid4().hex[:6]}"
    return slug


def _rows_without_documents(index: Path, target: Path) -> None:
    """Copy the retrieval index; its rows name the source installation's documents, which do
    not exist here, so citations keep file name, page and text but link nowhere."""
    from gptstudio.services.retrieval import read_index, write_index

    loaded = read_index(index)
    rows = [{**row, "document_id": 0} for row in loaded.rows]
    manifest = {**loaded.manifest, "imported": True, "dataset_id": None}
    write_index(target, vectors=loaded.vectors, rows=rows, manifest=manifest)


def import_bundle(
    *, actor: UserPublic, archive: Path, client: Client | None = None, step: Step = _no_step
) -> Assistant:
    """Recreate the bundle's assistant and published version for ``actor`` (a creator)."""
    authorize(actor, Role.creator)
    work = get_settings().artifacts_dir / "imports" / uuid.uuid4().hex
    work.mkdir(parents=True)
    try:
        step("unpacking", 0.0)
        root = _extract(archive, work / "unpacked")
        manifest = _manifest(root)
        verify(root, manifest, step)
        base_model = match_base_model(manifest)
        if not (root / "adapter" / "adapter_config.json").is_file():
            raise BundleRejected("The bundle holds no adapter (adapter/adapter_config.json).")
        step("recreating the assistant", 1.0)
        return _recreate(actor, root, manifest, base_model, client)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _recreate(
    actor: UserPublic, root: Path, manifest: dict[str, Any], base_model: str, client: Client | None
) -> Assistant:
    about, model = manifest.get("assistant") or {}, manifest.get("model_version") or {}
    with session_scope() as session:
        assistant = Assistant(
            owner_id=actor.id, name=str(about.get("name") or "Imported assistant")[:120],
            slug=_unique_slug(session, str(about.get("name") or "imported")),
            description=str(about.get("description", ""))[:2000],
            system_prompt=str(about.get("system_prompt", ""))[:8000],
            welcome_message=str(about.get("welcome_message", ""))[:2000],
            conversation_starters=list(about.get("conversation_starters") or [])[:8],
            rag_enabled=bool(about.get("rag_enabled")) and (root / "retrieval").is_dir(),
            rag_top_k=min(max(int(about.get("rag_top_k") or 4), 1), 20),
        )  # fmt: skip
        session.add(assistant)
        session.flush()
        assistant_id = assistant.id or 0
        home = get_settings().artifacts_dir / "assistants" / str(assistant_id) / "imported"
        adapter = home / f"v{int(model.get('version') or 1)}" / "adapter"
        adapter.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root / "adapter", adapter)
        index = root / "retrieval" / "index.npz"
        if index.is_file():
            _rows_without_documents(index, index_path(assistant_id))
        version = ModelVersion(
            assistant_id=assistant_id, version=int(model.get("version") or 1),
            base_model=base_model, adapter_path=str(adapter), status="draft",
            metrics=dict(model.get("metrics") or {}),
            report={**dict(model.get("report") or {}), "imported": _provenance(manifest)},
            gate_override_reason=str(model.get("gate_override_reason", ""))[:2000],
        )  # fmt: skip
        session.add(version)
        session.flush()
        training.publish_version(session, assistant, version)
        audit.record(
            session, action="assistant.imported", actor_id=actor.id,
            target=f"assistant:{assistant_id}", ip=client.ip if client else "",
            user_agent=client.user_agent if client else "", detail=_provenance(manifest),
        )  # fmt: skip
        session.flush()
        session.refresh(assistant)
        session.expunge(assistant)
        return assistant


def _provenance(manifest: dict[str, Any]) -> dict[str, Any]:
    about, model = manifest.get("assistant") or {}, manifest.get("model_version") or {}
    return {
        "from": about.get("slug", ""), "version": model.get("version"),
        "exported_at": manifest.get("created_at", ""), "dataset": manifest.get("dataset") or {},
        "imported_at": utcnow().isoformat(),
    }  # fmt: skip


def imported_versions(*, actor: UserPublic) -> list[dict[str, Any]]:
    """The actor's assistants that came from bundles, newest first (for the import page)."""
    with session_scope() as session:
        rows = session.exec(
            select(Assistant, ModelVersion)
            .join(ModelVersion, col(ModelVersion.assistant_id) == col(Assistant.id))
            .where(Assistant.owner_id == actor.id)
            .order_by(col(ModelVersion.id).desc())
        ).all()
        return [
            {"assistant": a.name, "slug": a.slug, "version": v.version, "status": v.status,
             "base_model": v.base_model, **v.report["imported"]}
            for a, v in rows
            if isinstance(v.report, dict) and "imported" in v.report
        ]  # fmt: skip

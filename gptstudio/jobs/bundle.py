"""The export job: build a model version's bundle (see :mod:`gptstudio.services.bundle`).

Merge the adapter into its base, write the GGUF and read it back against the merged tensors,
write the Ollama Modelfile, copy the adapter and the retrieval index, checksum everything into the
manifest and pack one tar. Each step writes its progress to the version row (the training page
polls it). The bundle is built in a hidden folder and renamed into place, and the tar is written
beside its final name and moved over it, so a download in progress, or a second export, never
sees half a bundle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from gptstudio.db import session_scope, utcnow
from gptstudio.jobs.tasks import body
from gptstudio.models import Assistant, Dataset, ModelVersion
from gptstudio.services import bundle
from gptstudio.services.completion import Params
from gptstudio.services.retrieval import index_path, read_index
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)
# Where each step starts, as a fraction of the whole build (merging and the GGUF dominate).
STEPS = {
    "merging the adapter into the base model": 0.0,
    "writing the GGUF file": 0.35,
    "reading the GGUF back and comparing tensors": 0.6,
    "writing the Modelfile, adapter and retrieval index": 0.7,
    "computing checksums": 0.75,
    "packing the bundle": 0.85,
}


class _Reporter:
    """Writes ``export_progress`` on the version row, at most every half second within a step."""

    def __init__(self, version_id: int) -> None:
        self.version_id, self.step, self._last = version_id, "", 0.0

    def __call__(self, step: str, within: float = 0.0) -> None:
        now = time.monotonic()
        if step == self.step and now - self._last < 0.5 and within < 1.0:
            return
        self.step, self._last = step, now
        names = list(STEPS)
        start = STEPS[step]
        end = STEPS[names[names.index(step) + 1]] if step != names[-1] else 1.0
        fraction = round(start + (end - start) * min(max(within, 0.0), 1.0), 4)
        _write(self.version_id, {"state": "running", "step": step, "fraction": fraction})


def _write(version_id: int, progress: dict[str, Any]) -> None:
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is not None:
            version.export_progress = {**progress, "updated_at": utcnow().isoformat()}


class _Counting:
    """A file object that reports how much of the whole bundle has been read (tar progress)."""

    def __init__(self, handle: BinaryIO, seen: list[int], total: int, report: _Reporter) -> None:
        self.handle, self.seen, self.total, self.report = handle, seen, total, report

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.seen[0] += len(data)
        self.report("packing the bundle", self.seen[0] / self.total)
        return data


def _pack(folder: Path, archive: Path, report: _Reporter) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files) or 1
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
    seen = [0]
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as packed:
            for path in files:
                name = f"{folder.name}/{path.relative_to(folder).as_posix()}"
                info = packed.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    packed.addfile(info, _Counting(handle, seen, total, report))
        partial.replace(archive)
    finally:
        partial.unlink(missing_ok=True)


def _facts(version_id: int) -> dict[str, Any] | None:
    """What the manifest says of the assistant, the version and its dataset version."""
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            return None
        assistant = session.get(Assistant, version.assistant_id)
        data = session.get(Dataset, version.dataset_id) if version.dataset_id else None
        if assistant is None:
            return None
        return {
            "assistant": {
                "name": assistant.name, "slug": assistant.slug,
                "description": assistant.description, "system_prompt": assistant.system_prompt,
                "welcome_message": assistant.welcome_message,
                "conversation_starters": list(assistant.conversation_starters),
                "rag_enabled": assistant.rag_enabled, "rag_top_k": assistant.rag_top_k,
            },
            "model_version": {
                "version": version.version, "status": version.status,
                "metrics": version.metrics, "report": version.report,
                "gate_override_reason": version.gate_override_reason,
                "published_at": version.published_at.isoformat() if version.published_at else None,
            },
            "dataset": (
                {"version": data.version, "content_hash": data.content_hash, "counts": data.counts}
                if data else None
            ),
            "adapter": version.adapter_path, "base": version.base_model,
            "assistant_id": assistant.id,
            "name": bundle.bundle_name(assistant.slug, version.version),
        }  # fmt: skip


def _model_files(facts: dict[str, Any], folder: Path, report: _Reporter) -> dict[str, Any]:
    """adapter/, merged/, model.gguf and the Modelfile; returns the manifest's model part."""
    from trainer import bundle as model_bundle
    from trainer.merge import merge_adapter
    from trainer.modeling import find_adapter_dir

    report("merging the adapter into the base model")
    adapter = find_adapter_dir(facts["adapter"])
    merged = merge_adapter(adapter, folder / "merged", base_model=facts["base"])
    config = json.loads((merged / "config.json").read_text(encoding="utf-8"))
    shutil.copytree(adapter, folder / "adapter")
    gguf: dict[str, Any] = {"written": False}
    source = "./merged"
    if model_bundle.gguf_supported(merged):
        report("writing the GGUF file")
        model_bundle.write_gguf(
            merged, folder / "model.gguf", name=facts["name"],
            progress=lambda done: report("writing the GGUF file", done),
        )  # fmt: skip
        report("reading the GGUF back and comparing tensors")
        check = model_bundle.check_gguf(folder / "model.gguf", merged)
        if not check.ok:
            raise RuntimeError(f"the GGUF does not read back equal: {check.mismatched[:5]}")
        gguf = {"written": True, "file": "model.gguf", "tensors": check.tensors,
                "max_abs_diff": check.max_abs_diff, "architecture": check.architecture}  # fmt: skip
        source = "./model.gguf"
    else:
        gguf["reason"] = (
            f"GGUF export supports Llama-architecture models, not {config.get('architectures')}"
        )
    report("writing the Modelfile, adapter and retrieval index")
    params = Params()
    made = model_bundle.modelfile(
        merged, source=source, system=facts["assistant"]["system_prompt"],
        temperature=params.temperature, top_p=params.top_p,
        context_length=min(int(config.get("max_position_embeddings") or 4096), 8192),
    )  # fmt: skip
    (folder / "Modelfile").write_text(made.text, encoding="utf-8")
    return {
        "gguf": gguf,
        "ollama": {"from": source, "stops": made.stops, "template_checked": made.template_checked,
                   "template_note": made.template_note},
        "merged": {"architectures": config.get("architectures"),
                   "dtype": config.get("dtype") or config.get("torch_dtype")},
    }  # fmt: skip


def _retrieval(assistant_id: int, folder: Path) -> dict[str, Any] | None:
    source = index_path(assistant_id)
    if not source.is_file():
        return None
    (folder / "retrieval").mkdir()
    shutil.copy2(source, folder / "retrieval" / "index.npz")
    loaded = read_index(source)
    with (folder / "retrieval" / "chunks.jsonl").open("w", encoding="utf-8") as out:
        for row in loaded.rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"chunks": len(loaded.rows), "dimensions": int(loaded.vectors.shape[1]),
            "model": loaded.manifest.get("model"),
            "dataset_version": loaded.manifest.get("dataset_version")}  # fmt: skip


@body("export_version")
def export_version(version_id: int) -> None:
    """Build the version's bundle and record it (``export_path``) for the download."""
    facts = _facts(version_id)
    if facts is None:
        return
    report = _Reporter(version_id)
    exports = get_settings().artifacts_dir / "exports"
    target = exports / facts["name"]
    building = exports / f".{facts['name']}.{os.getpid()}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        model = _model_files(facts, building, report)
        retrieval = _retrieval(facts["assistant_id"], building)
        report("computing checksums")
        manifest = {
            "format": bundle.FORMAT, "format_version": bundle.FORMAT_VERSION,
            "created_at": utcnow().isoformat(), "assistant": facts["assistant"],
            "model_version": facts["model_version"], "dataset": facts["dataset"],
            "base_model": {"name": facts["base"],
                           "fingerprint": bundle.base_fingerprint(facts["base"])},
            **model, "retrieval": retrieval, "files": bundle.file_table(building),
        }  # fmt: skip
        (building / bundle.MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        report("packing the bundle")
        archive = bundle.archive_path(target)
        _pack(target, archive, report)
        shutil.rmtree(target)  # the tar is what is served: keep one copy of the weights on disk
    except Exception as error:
        log.exception("exporting model version %s failed", version_id)
        failed = {"state": "failed", "step": "", "fraction": 0, "error": str(error)[:500]}
        _write(version_id, failed)
        raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    with session_scope() as session:
        version = session.get(ModelVersion, version_id)
        if version is not None:
            version.export_path = str(target)
            version.export_progress = {
                "state": "done", "step": "ready", "fraction": 1.0,
                "bytes": archive.stat().st_size, "updated_at": utcnow().isoformat(),
            }  # fmt: skip

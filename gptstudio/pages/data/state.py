"""What every card of the data page shows, and following the queue: :class:`DataState` loads
the documents, the latest curation run with its result (counts, duplicate clusters, a page of
examples) and the dataset versions, and refreshes them while parsing or curation is pending.
Each card's own handlers live in a substate beside its components."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.services import dataset, document
from gptstudio.state.live import follow
from gptstudio.state.owned_assistant import AssistantPageState

WATCH_SECONDS = 30 * 60
PAGE_SIZE = 20
# Badge colours of a document's or a curation run's status; any other status is orange.
STATUS_COLORS = {"parsed": "green", "failed": "red", "done": "green"}
PENDING = ("uploaded", "parsing")


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(n, 0) / 1e3:.0f} KB"


def _document_row(d: document.DocumentInfo) -> dict[str, str]:
    report = d.report
    facts = [
        str(report.get("file_type", "")),
        f"{report['pages']} pages" if report.get("pages") else "",
        f"{report['sections']} sections" if report.get("sections") else "",
        f"{report['examples']} examples" if report.get("examples") else "",
        *report.get("notes", []),
    ]
    chosen = report.get("column_choice") or {}
    if chosen:
        facts.append("columns: " + ", ".join(f"{r} = {c}" for r, c in chosen.items()))
    return {
        "id": str(d.id),
        "name": d.filename,
        "size": size_text(d.size_bytes),
        "status": d.status,
        "detail": d.error or " · ".join(f for f in facts if f),
        "url": d.source_url,
        "columns": "\n".join(report.get("columns") or []),
        "column_mode": _column_mode(d.columns or {}, chosen),
        "question_template": (d.columns or {}).get("question_template", ""),
        "answer_template": (d.columns or {}).get("answer_template", ""),
    }


def _column_mode(stored: dict[str, str], chosen: dict[str, str]) -> str:
    if stored.get("question_template"):
        return "template"
    return "text" if "text" in chosen else "instruction"


def _source(source: dict[str, Any], names: dict[str, str]) -> str:
    where = [names.get(str(source.get("document_id")), "document")]
    if source.get("page"):
        where.append(f"page {source['page']}")
    if source.get("heading_path"):
        where.append(" › ".join(source["heading_path"]))
    if source.get("char_start") is not None:
        where.append(f"chars {source['char_start']}–{source.get('char_end')}")
    return ", ".join(where)


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in mapping.items()) or "none"


def _example_row(example: dict[str, Any], override: Any, names: dict[str, str]) -> dict[str, str]:
    messages = (
        override.messages if override is not None and override.messages else example["messages"]
    )
    question = next((m["content"] for m in messages if m["role"] == "user"), "")
    answer = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
    return {
        "id": example["id"],
        "split": example["split"],
        "kind": example["kind"],
        "question": question,
        "answer": answer,
        "source": _source(example["source"], names),
        "state": override.action if override is not None else "",
    }


class DataState(AssistantPageState):
    documents: list[dict[str, str]] = []
    storage: str = ""
    run_status: str = ""
    run_step: str = ""
    run_percent: int = 0
    run_error: str = ""
    counts: list[dict[str, str]] = []
    reports: list[dict[str, str]] = []
    duplicates: list[dict[str, str]] = []
    examples: list[dict[str, str]] = []
    example_total: int = 0
    offset: int = 0
    datasets: list[dict[str, str]] = []
    versions: list[str] = []
    watching: bool = False
    _pending_before: list[str] = []

    @rx.var
    def busy(self) -> bool:
        pending = any(d["status"] in PENDING for d in self.documents)
        return pending or self.run_status in ("queued", "running")

    def _settle_alerts(self) -> None:
        """An alert said while parsing or curation was pending is old news once that work ends
        (e.g. "No parsed document yet" after the documents are parsed): drop it then."""
        pending = [f"document {d['id']}" for d in self.documents if d["status"] in PENDING]
        if self.run_status in ("queued", "running"):
            pending.append("run")
        if set(self._pending_before) - set(pending):
            self.error = ""
        self._pending_before = pending

    @rx.event
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        self._refresh()
        return DataState.watch if self.busy else None

    def _refresh(self) -> None:
        actor = self._actor()
        docs = document.list_documents(actor=actor, assistant_id=self.assistant_id)
        self.documents = [_document_row(d) for d in docs]
        used, allowed = document.storage_summary(actor=actor)
        self.storage = f"{size_text(used)} of {size_text(allowed)} used"
        self._refresh_run(actor, {str(d.id): d.filename for d in docs})
        self.datasets = [
            {
                "id": str(d.id),
                "version": str(d.version),
                "hash": d.content_hash[:12],
                "created": f"{d.created_at:%Y-%m-%d %H:%M}",
                "warnings": " ".join(d.counts.get("warnings", [])),
                **{s: str(d.counts.get("splits", {}).get(s, 0)) for s in dataset.SPLITS},
            }
            for d in dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        ]
        self.versions = [row["version"] for row in self.datasets]
        self._settle_alerts()

    def _refresh_run(self, actor: Any, names: dict[str, str]) -> None:
        run = dataset.latest_run(actor=actor, assistant_id=self.assistant_id)
        if run is None:
            self.run_status, self.counts, self.examples, self.duplicates = "", [], [], []
            return
        progress = run.progress or {}
        self.run_status, self.run_error = run.status, run.error
        self.run_step = str(progress.get("step", ""))
        total = max(int(progress.get("total", 1)), 1)
        self.run_percent = (
            100 if run.status == "done" else int(90 * progress.get("done", 0) / total)
        )
        result = dataset.run_result(run)
        if not result:
            return
        counts = result["counts"]
        self.counts = [
            {"label": label, "value": str(value)}
            for label, value in (
                ("Documents", counts["documents"]),
                ("Chunks kept", counts["chunks_kept"]),
                ("Dropped by quality", _pairs(counts["quality_dropped"])),
                ("Duplicates dropped", _pairs(counts["duplicates_dropped"])),
                ("Examples made", _pairs(counts["examples"])),
                ("Examples imported", counts["imported_examples"]),
                ("Personal data replaced", _pairs(counts["pii_replaced"])),
                ("Split", _pairs(counts["splits"])),
            )
        ]
        if "model_qa" in counts:
            self.counts.append({"label": "Model QA", "value": _pairs(counts["model_qa"])})
        self.reports = [
            {
                "name": r["filename"],
                "done": " ".join(r["what_was_done"]) or "Nothing to clean.",
                "pii": _pairs(r["pii"]),
                "chunks": str(r["chunks"]),
            }
            for r in result["reports"].values()
        ]
        decided = dataset.overrides(actor=actor, assistant_id=self.assistant_id)
        self.duplicates = [
            {
                "cluster": str(n + 1),
                "kind": c["kind"],
                "id": m["id"],
                "text": m["text"][:240],
                "kept": "yes" if m["id"] in c["kept"] else "",
            }
            for n, c in enumerate(result["clusters"][:50])
            for m in c["members"]
        ]
        shown = result["examples"][self.offset : self.offset + PAGE_SIZE]
        self.example_total = len(result["examples"])
        self.examples = [_example_row(e, decided.get(e["id"]), names) for e in shown]

    def _pending(self) -> bool:
        return bool(self.busy)

    @rx.event(background=True)
    async def watch(self) -> None:
        """Follow parsing and curation until nothing is pending (or half an hour passes)."""
        await follow(self, seconds=WATCH_SECONDS)

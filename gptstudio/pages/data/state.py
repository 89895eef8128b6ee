"""An assistant's data: upload documents and web pages, curate them, review the examples and
duplicates, and snapshot versioned datasets. Long steps run on the queue; the page follows them
live and picks up where it was after a reload."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button, table_header
from gptstudio.errors import DomainError
from gptstudio.services import dataset, document, web_fetch
from gptstudio.settings import get_settings
from gptstudio.state.live import follow
from gptstudio.state.owned_assistant import AssistantPageState, assistant_header

UPLOAD_ID = "documents"
WATCH_SECONDS = 30 * 60
PAGE_SIZE = 20
PII_LABELS = {
    "email": "e-mails",
    "phone": "phone numbers",
    "card": "card numbers",
    "iban": "IBANs",
    "ip_address": "IP addresses",
    "national_id": "national ids",
}


def _size(n: int) -> str:
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
        "size": _size(d.size_bytes),
        "status": d.status,
        "detail": d.error or " · ".join(f for f in facts if f),
        "url": d.source_url,
        "columns": "\n".join(report.get("columns") or []),
        "column_mode": "text" if "text" in chosen else "instruction",
    }


NO_COLUMN = "(none)"


def _source(source: dict[str, Any], names: dict[str, str]) -> str:
    where = [names.get(str(source.get("document_id")), "document")]
    if source.get("page"):
        where.append(f"page {source['page']}")
    if source.get("heading_path"):
        where.append(" › ".join(source["heading_path"]))
    if source.get("char_start") is not None:
        where.append(f"chars {source['char_start']}–{source.get('char_end')}")
    return ", ".join(where)


class DataState(AssistantPageState):
    documents: list[dict[str, str]] = []
    storage: str = ""
    uploads: dict[str, str] = {}
    fetching: bool = False
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
    editing: str = ""
    edit_question: str = ""
    edit_answer: str = ""
    datasets: list[dict[str, str]] = []
    versions: list[str] = []
    diff: str = ""
    pii: list[str] = list(dataset.PII_CATEGORIES)
    watching: bool = False
    column_doc: str = ""
    column_doc_name: str = ""
    column_options: list[str] = []
    column_mode: str = "instruction"
    qa_model: str = ""

    @rx.var
    def busy(self) -> bool:
        pending = any(d["status"] in ("uploaded", "parsing") for d in self.documents)
        return pending or self.run_status in ("queued", "running")

    @rx.event
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        self.uploads, self.diff = {}, ""
        self.qa_model = get_settings().qa_model
        self._refresh()
        return DataState.watch if self.busy else None

    def _refresh(self) -> None:
        actor = self._actor()
        docs = document.list_documents(actor=actor, assistant_id=self.assistant_id)
        self.documents = [_document_row(d) for d in docs]
        used, allowed = document.storage_summary(actor=actor)
        self.storage = f"{_size(used)} of {_size(allowed)} used"
        self._refresh_run(actor, {str(d.id): d.filename for d in docs})
        self.datasets = [
            {
                "id": str(d.id),
                "version": str(d.version),
                "hash": d.content_hash[:12],
                "created": f"{d.created_at:%Y-%m-%d %H:%M}",
                **{s: str(d.counts.get("splits", {}).get(s, 0)) for s in dataset.SPLITS},
            }
            for d in dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        ]
        self.versions = [row["version"] for row in self.datasets]

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

    @rx.event(background=True)
    async def handle_upload(self, chunks: rx.UploadChunkIterator) -> Any:
        """Stream each file to disk as its chunks arrive; one bad file does not stop the rest."""
        async with self:
            actor, assistant_id = self._actor(), self.assistant_id
        writer: document.UploadWriter | None = None
        writer_name = ""
        async for chunk in chunks:
            if chunk.offset == 0:  # a new file begins
                if writer is not None:
                    await self._finish(writer, writer_name)
                writer, writer_name = None, chunk.filename
                try:
                    writer = document.UploadWriter(
                        actor=actor, assistant_id=assistant_id, filename=chunk.filename
                    )
                except DomainError as error:
                    await self._note(chunk.filename, str(error))
            if writer is None:
                continue  # this file was refused; skip the rest of its chunks
            try:
                writer.write(chunk.data)
                await self._note(chunk.filename, f"receiving… {_size(writer.size)}")
            except DomainError as error:
                writer.abort()
                writer = None
                await self._note(chunk.filename, str(error))
        if writer is not None:
            await self._finish(writer, writer_name)
        return [rx.clear_selected_files(UPLOAD_ID), DataState.watch]

    async def _note(self, name: str, text: str) -> None:
        async with self:
            self.uploads = {**self.uploads, name: text}

    async def _finish(self, writer: document.UploadWriter, name: str) -> None:
        try:
            stored = writer.finish()
            await self._note(name, f"stored ({_size(stored.size_bytes)}), parsing…")
        except DomainError as error:
            await self._note(name, str(error))
        async with self:
            self._refresh()

    @rx.event(background=True)
    async def fetch_url(self, form: dict[str, Any]) -> Any:
        async with self:
            actor, assistant_id = self._actor(), self.assistant_id
            self.fetching, self.error = True, ""
        try:
            await web_fetch.ingest(
                actor=actor,
                assistant_id=assistant_id,
                url=str(form.get("url", "")),
                crawl_site=bool(form.get("crawl")),
            )
        except DomainError as error:
            async with self:
                self.error = str(error)
        finally:
            async with self:
                self.fetching = False
                self._refresh()
        return DataState.watch

    @rx.event
    def delete_document(self, document_id: str) -> None:
        document.delete_document(actor=self._actor(), document_id=int(document_id))
        self._refresh()

    @rx.event
    def open_columns(self, document_id: str) -> None:
        row = next((d for d in self.documents if d["id"] == document_id), None)
        if row is None or not row["columns"]:
            return
        self.column_doc, self.column_doc_name = document_id, row["name"]
        self.column_options = row["columns"].split("\n")
        self.column_mode = row["column_mode"]

    @rx.event
    def close_columns(self) -> None:
        self.column_doc = ""

    @rx.event
    def set_column_mode(self, mode: str) -> None:
        self.column_mode = mode

    @rx.event
    def save_columns(self, form: dict[str, Any]) -> Any:
        self.error = ""
        roles = ("text",) if self.column_mode == "text" else document.COLUMN_ROLES[1:]
        chosen = {r: str(form.get(r, "")) for r in roles if form.get(r) not in (None, NO_COLUMN)}
        try:
            document.choose_columns(
                actor=self._actor(), document_id=int(self.column_doc), columns=chosen
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self.column_doc = ""
        self._refresh()
        return DataState.watch

    @rx.event
    def toggle_pii(self, category: str, on: bool) -> None:
        chosen = set(self.pii) | {category} if on else set(self.pii) - {category}
        self.pii = [c for c in dataset.PII_CATEGORIES if c in chosen]

    @rx.event
    def run_curation(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            threshold = float(str(form.get("threshold") or 0.7))
            dataset.start_curation(
                actor=self._actor(),
                assistant_id=self.assistant_id,
                settings=dataset.CurationSettings(
                    pii_categories=tuple(self.pii),
                    near_duplicate_threshold=threshold,
                    semantic_dedupe=bool(form.get("semantic")),
                    model_qa=bool(form.get("model_qa")),
                ),
            )
        except ValueError:
            self.error = "The near-duplicate threshold must be a number such as 0.7."
            return None
        except DomainError as error:
            self.error = str(error)
            return None
        self.offset = 0
        self._refresh()
        return DataState.watch

    def _override(self, example_id: str, action: str, messages: Any = None) -> None:
        dataset.set_override(
            actor=self._actor(),
            assistant_id=self.assistant_id,
            example_id=example_id,
            action=action,
            messages=messages,
        )
        self._refresh()

    @rx.event
    def keep_member(self, member_id: str) -> Any:
        self._override(member_id, "keep")
        return rx.toast.info("Kept. Run the curation again to apply it.")

    @rx.event
    def drop_example(self, example_id: str) -> None:
        self._override(example_id, "drop")

    @rx.event
    def reset_example(self, example_id: str) -> None:
        self._override(example_id, "reset")

    @rx.event
    def start_edit(self, example_id: str) -> None:
        row = next(e for e in self.examples if e["id"] == example_id)
        self.editing, self.edit_question, self.edit_answer = (
            example_id,
            row["question"],
            row["answer"],
        )

    @rx.event
    def cancel_edit(self) -> None:
        self.editing = ""

    @rx.event
    def save_edit(self, form: dict[str, Any]) -> None:
        messages = [
            {"role": "user", "content": str(form.get("question", "")).strip()},
            {"role": "assistant", "content": str(form.get("answer", "")).strip()},
        ]
        try:
            self._override(self.editing, "edit", messages)
        except DomainError as error:
            self.error = str(error)
            return
        self.editing = ""

    @rx.event
    def page_examples(self, step: int) -> None:
        self.offset = max(0, min(self.offset + step * PAGE_SIZE, self.example_total - 1))
        self._refresh()

    @rx.event
    def take_snapshot(self) -> Any:
        try:
            created = dataset.snapshot(actor=self._actor(), assistant_id=self.assistant_id)
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh()
        return rx.toast.success(f"Dataset version {created.version} saved.")

    @rx.event
    def compare(self, form: dict[str, Any]) -> None:
        try:
            diff = dataset.diff_versions(
                actor=self._actor(),
                assistant_id=self.assistant_id,
                old_version=int(form.get("old") or 0),
                new_version=int(form.get("new") or 0),
            )
        except (ValueError, DomainError) as error:
            self.diff = str(error) if isinstance(error, DomainError) else "Pick two versions."
            return
        self.diff = (
            f"{len(diff['added'])} added, {len(diff['removed'])} removed, "
            f"{len(diff['changed'])} changed, {diff['unchanged']} unchanged."
        )


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


def _status_badge(status: rx.Var[str]) -> rx.Component:
    return rx.badge(
        status,
        color_scheme=rx.match(
            status, ("parsed", "green"), ("failed", "red"), ("done", "green"), "orange"
        ),
    )


def _documents_card() -> rx.Component:
    return rx.card(
        rx.heading("Documents", size="4"),
        rx.text(DataState.storage, size="1", color_scheme="gray", id="storage"),
        rx.upload.root(
            rx.vstack(
                rx.icon("upload"),
                rx.text("Drop PDF, Word, HTML, Markdown, text, CSV or JSON files here, or click."),
                align="center",
                padding="1.5em",
            ),
            id=UPLOAD_ID,
            multiple=True,
            border="1px dashed var(--gray-7)",
            border_radius="8px",
            width="100%",
        ),
        rx.hstack(
            rx.foreach(rx.selected_files(UPLOAD_ID), lambda name: rx.badge(name)),
            wrap="wrap",
        ),
        rx.button(
            "Upload",
            id="upload-button",
            on_click=DataState.handle_upload(rx.upload_files_chunk(upload_id=UPLOAD_ID)),
        ),
        rx.foreach(
            DataState.uploads,
            lambda item: rx.text(item[0], ": ", item[1], size="2", class_name="upload-status"),
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="url", placeholder="https://example.org/guide", id="url", width="100%"
                ),
                rx.checkbox("Crawl the site", name="crawl", id="crawl"),
                submit_button("Fetch", loading=DataState.fetching, id="fetch"),
                width="100%",
                align="center",
            ),
            on_submit=DataState.fetch_url,
            reset_on_submit=True,
        ),
        rx.table.root(
            rx.table.body(
                rx.foreach(
                    DataState.documents,
                    lambda d: rx.table.row(
                        rx.table.cell(d["name"]),
                        rx.table.cell(d["size"]),
                        rx.table.cell(_status_badge(d["status"])),
                        rx.table.cell(rx.text(d["detail"], size="1")),
                        rx.table.cell(
                            rx.cond(
                                d["columns"] != "",
                                rx.button(
                                    "Columns",
                                    size="1",
                                    variant="soft",
                                    class_name="choose-columns",
                                    on_click=DataState.open_columns(d["id"]),
                                ),
                            ),
                            rx.button(
                                rx.icon("trash-2", size=14),
                                size="1",
                                variant="ghost",
                                on_click=DataState.delete_document(d["id"]),
                            ),
                        ),
                        class_name="document-row",
                    ),
                )
            ),
            width="100%",
        ),
        rx.cond(DataState.column_doc != "", _columns_form()),
        width="100%",
    )


def _column_select(role: str, label: str, *, optional: bool = False) -> rx.Component:
    options = rx.Var.create([NO_COLUMN]) + DataState.column_options
    return rx.vstack(
        rx.text(label, size="1"),
        rx.select(
            options if optional else DataState.column_options,
            name=role,
            id=f"column-{role}",
            default_value=NO_COLUMN if optional else None,
            required=not optional,
        ),
        spacing="1",
    )


def _columns_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.text("Which columns of ", rx.code(DataState.column_doc_name), " should be read?"),
            rx.radio_group(
                ["instruction", "text"],
                value=DataState.column_mode,
                on_change=DataState.set_column_mode,
                direction="row",
                id="column-mode",
                name="column_mode",
            ),
            rx.cond(
                DataState.column_mode == "text",
                rx.hstack(_column_select("text", "Text column")),
                rx.hstack(
                    _column_select("instruction", "Instruction (question)"),
                    _column_select("response", "Response (answer)"),
                    _column_select("context", "Context (optional)", optional=True),
                    _column_select("system", "System (optional)", optional=True),
                    wrap="wrap",
                ),
            ),
            rx.hstack(
                submit_button("Read these columns", id="save-columns"),
                rx.button(
                    "Cancel", variant="soft", type="button", on_click=DataState.close_columns
                ),
            ),
            id="columns-form",
        ),
        on_submit=DataState.save_columns,
    )


def _curation_card() -> rx.Component:
    return rx.card(
        rx.heading("Curation", size="4"),
        rx.form(
            rx.vstack(
                rx.text("Replace personal data:", size="2"),
                rx.hstack(
                    *[
                        rx.checkbox(
                            label,
                            checked=DataState.pii.contains(key),
                            id=f"pii-{key}",
                            on_change=lambda on, key=key: DataState.toggle_pii(key, on),
                        )
                        for key, label in PII_LABELS.items()
                    ],
                    wrap="wrap",
                ),
                rx.checkbox(
                    "Also remove paraphrases (semantic dedupe with MiniLM; slower)",
                    name="semantic",
                    id="semantic",
                ),
                rx.cond(
                    DataState.qa_model != "",
                    rx.hstack(
                        rx.checkbox("Add model-written questions", name="model_qa", id="model-qa"),
                        rx.text("(", DataState.qa_model, ")", size="2", color_scheme="gray"),
                        align="center",
                    ),
                ),
                rx.hstack(
                    rx.text("Near-duplicate threshold (Jaccard)", size="2"),
                    rx.input(name="threshold", default_value="0.7", width="6em", id="threshold"),
                    align="center",
                ),
                submit_button("Run curation", id="run-curation", disabled=DataState.busy),
            ),
            on_submit=DataState.run_curation,
        ),
        rx.cond(
            DataState.run_status != "",
            rx.vstack(
                rx.hstack(
                    rx.text("Latest run: ", size="2"),
                    _status_badge(DataState.run_status),
                    rx.text(DataState.run_step, size="2", color_scheme="gray"),
                    id="run-status",
                ),
                rx.progress(value=DataState.run_percent, width="100%"),
                rx.cond(
                    DataState.run_error != "", rx.callout(DataState.run_error, color_scheme="red")
                ),
                width="100%",
            ),
        ),
        rx.cond(
            DataState.counts.length() > 0,
            rx.data_list.root(
                rx.foreach(
                    DataState.counts,
                    lambda c: rx.data_list.item(
                        rx.data_list.label(c["label"]), rx.data_list.value(c["value"])
                    ),
                ),
                id="counts",
            ),
        ),
        rx.foreach(
            DataState.reports,
            lambda r: rx.text(
                rx.text.strong(r["name"]),
                ": ",
                r["done"],
                " Personal data: ",
                r["pii"],
                ". Chunks: ",
                r["chunks"],
                ".",
                size="1",
                class_name="document-report",
            ),
        ),
        width="100%",
    )


def _duplicates_card() -> rx.Component:
    return rx.card(
        rx.heading("Duplicate clusters", size="4"),
        rx.text("Each cluster keeps one member; keep another instead if it is better.", size="2"),
        rx.table.root(
            rx.table.body(
                rx.foreach(
                    DataState.duplicates,
                    lambda m: rx.table.row(
                        rx.table.cell(m["cluster"]),
                        rx.table.cell(m["kind"]),
                        rx.table.cell(rx.text(m["text"], size="1")),
                        rx.table.cell(
                            rx.cond(
                                m["kept"] == "yes",
                                rx.badge("kept", color_scheme="green"),
                                rx.button(
                                    "Keep this one",
                                    size="1",
                                    variant="soft",
                                    on_click=DataState.keep_member(m["id"]),
                                ),
                            )
                        ),
                        class_name="duplicate-row",
                    ),
                )
            ),
            width="100%",
        ),
        width="100%",
    )


def _example_row_view(e: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(e["split"])),
        rx.table.cell(
            rx.text(e["question"], weight="medium", size="2"), rx.text(e["answer"], size="2")
        ),
        rx.table.cell(
            rx.text(e["kind"], size="1"), rx.text(e["source"], size="1", color_scheme="gray")
        ),
        rx.table.cell(
            rx.cond(
                e["state"] != "",
                rx.hstack(
                    rx.badge(e["state"]),
                    rx.button(
                        "Undo", size="1", variant="ghost", on_click=DataState.reset_example(e["id"])
                    ),
                ),
                rx.hstack(
                    rx.button(
                        "Edit", size="1", variant="soft", on_click=DataState.start_edit(e["id"])
                    ),
                    rx.button(
                        "Drop",
                        size="1",
                        variant="soft",
                        color_scheme="red",
                        on_click=DataState.drop_example(e["id"]),
                    ),
                ),
            )
        ),
        class_name="example-row",
    )


def _examples_card() -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading("Examples", size="4"),
            rx.spacer(),
            rx.text(
                DataState.offset + 1,
                "–",
                DataState.offset + DataState.examples.length(),
                " of ",
                DataState.example_total,
                size="2",
            ),
            rx.button("Previous", size="1", variant="soft", on_click=DataState.page_examples(-1)),
            rx.button("Next", size="1", variant="soft", on_click=DataState.page_examples(1)),
            width="100%",
            align="center",
        ),
        rx.cond(
            DataState.editing != "",
            rx.form(
                rx.vstack(
                    rx.text_area(
                        name="question", default_value=DataState.edit_question, width="100%"
                    ),
                    rx.text_area(
                        name="answer", default_value=DataState.edit_answer, width="100%", rows="4"
                    ),
                    rx.hstack(
                        submit_button("Save", id="save-edit"),
                        rx.button(
                            "Cancel", type="button", variant="soft", on_click=DataState.cancel_edit
                        ),
                    ),
                    width="100%",
                ),
                on_submit=DataState.save_edit,
            ),
        ),
        rx.table.root(
            rx.table.body(rx.foreach(DataState.examples, _example_row_view)), width="100%"
        ),
        width="100%",
    )


def _datasets_card() -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.heading("Dataset versions", size="4"),
            rx.spacer(),
            rx.button(
                "Snapshot dataset",
                on_click=DataState.take_snapshot,
                id="snapshot",
                disabled=DataState.run_status != "done",
            ),
            width="100%",
        ),
        rx.table.root(
            table_header("Version", "Hash", "Train", "Validation", "Test", "Created", "Export"),
            rx.table.body(
                rx.foreach(
                    DataState.datasets,
                    lambda d: rx.table.row(
                        rx.table.cell("v", d["version"]),
                        rx.table.cell(rx.code(d["hash"])),
                        rx.table.cell(d["train"]),
                        rx.table.cell(d["validation"]),
                        rx.table.cell(d["test"]),
                        rx.table.cell(d["created"]),
                        rx.table.cell(
                            rx.el.a(
                                "train.jsonl",
                                href="/api/datasets/" + d["id"] + "/train.jsonl",
                                download=True,
                            )
                        ),
                        class_name="dataset-row",
                    ),
                )
            ),
            width="100%",
        ),
        rx.form(
            rx.hstack(
                rx.text("Compare", size="2"),
                rx.select(DataState.versions, name="old", placeholder="old", id="diff-old"),
                rx.select(DataState.versions, name="new", placeholder="new", id="diff-new"),
                submit_button("Compare", size="1", id="compare"),
                rx.text(DataState.diff, size="2", id="diff"),
                align="center",
            ),
            on_submit=DataState.compare,
        ),
        width="100%",
    )


@rx.page(route="/assistant/data", title="Data · GPT Studio", on_load=DataState.load)
def data() -> rx.Component:
    return page(
        assistant_header(),
        form_error(DataState.error),
        _documents_card(),
        _curation_card(),
        rx.cond(DataState.duplicates.length() > 0, _duplicates_card()),
        rx.cond(DataState.example_total > 0, _examples_card()),
        _datasets_card(),
        max_width="1100px",
    )

"""The documents card: upload files (streamed to disk chunk by chunk), fetch web pages, delete
documents, and choose which columns of a table to read. :class:`DocumentsState` holds what only
this card shows: each upload's progress, the fetch in flight and the column chooser."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.badges import status_badge
from gptstudio.components.layout import submit_button
from gptstudio.components.tables import data_table
from gptstudio.errors import DomainError
from gptstudio.pages.data.state import STATUS_COLORS, DataState, size_text
from gptstudio.services import document, web_fetch
from gptstudio.state.errors import shows_error

UPLOAD_ID = "documents"
NO_COLUMN = "(none)"


class DocumentsState(DataState):
    uploads: dict[str, str] = {}
    fetching: bool = False
    column_doc: str = ""
    column_doc_name: str = ""
    column_options: list[str] = []
    column_mode: str = "instruction"
    question_template: str = ""
    answer_template: str = ""

    @rx.event
    def opened(self) -> None:
        """A new visit to the page: the last visit's upload notes are old news."""
        self.uploads = {}

    @rx.event(background=True)
    async def handle_upload(self, chunks: rx.UploadChunkIterator) -> Any:
        """Stream each file to disk as its chunks arrive; one bad file does not stop the rest."""
        async with self:
            actor, assistant_id = self._actor(), self.assistant_id
            self.uploads = {}  # the last batch's notes are old news
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
                except DomainError as error:  # said beside this file, not for the whole page
                    await self._note(chunk.filename, str(error))
            if writer is None:
                continue  # this file was refused; skip the rest of its chunks
            try:
                writer.write(chunk.data)
                await self._note(chunk.filename, f"receiving… {size_text(writer.size)}")
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
        """A stored file's note gives way to its row in the table, whose status follows the
        parsing to its end; a refusal stays said beside the file's name."""
        try:
            writer.finish()
            async with self:
                self.uploads = {n: t for n, t in self.uploads.items() if n != name}
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
            await self._ingest(actor, assistant_id, form)
        finally:
            async with self:
                self.fetching = False
                self._refresh()
        return DataState.watch

    @shows_error
    async def _ingest(self, actor: Any, assistant_id: int, form: dict[str, Any]) -> None:
        await web_fetch.ingest(
            actor=actor,
            assistant_id=assistant_id,
            url=str(form.get("url", "")),
            crawl_site=bool(form.get("crawl")),
        )

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
        self.question_template = row["question_template"]
        self.answer_template = row["answer_template"]

    @rx.event
    def close_columns(self) -> None:
        self.column_doc = ""

    @rx.event
    def set_column_mode(self, mode: str) -> None:
        self.column_mode = mode

    @rx.event
    @shows_error
    def save_columns(self, form: dict[str, Any]) -> Any:
        self.error = ""
        roles = {
            "text": ("text",),
            "template": document.TEMPLATE_ROLES,
        }.get(self.column_mode, document.COLUMN_ROLES[1:])
        chosen = {r: str(form.get(r, "")) for r in roles if form.get(r) not in (None, NO_COLUMN)}
        document.choose_columns(
            actor=self._actor(), document_id=int(self.column_doc), columns=chosen
        )
        self.column_doc = ""
        self._refresh()
        return DataState.watch


def _document_view(d: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(d["name"]),
        rx.table.cell(d["size"]),
        rx.table.cell(status_badge(d["status"], **STATUS_COLORS)),
        rx.table.cell(rx.text(d["detail"], size="1")),
        rx.table.cell(
            rx.cond(
                d["columns"] != "",
                rx.button(
                    "Columns",
                    size="1",
                    variant="soft",
                    class_name="choose-columns",
                    on_click=DocumentsState.open_columns(d["id"]),
                ),
            ),
            rx.button(
                rx.icon("trash-2", size=14),
                size="1",
                variant="ghost",
                on_click=DocumentsState.delete_document(d["id"]),
            ),
        ),
        class_name="document-row",
    )


def _column_select(role: str, label: str, *, optional: bool = False) -> rx.Component:
    options = rx.Var.create([NO_COLUMN]) + DocumentsState.column_options
    return rx.vstack(
        rx.text(label, size="1"),
        rx.select(
            options if optional else DocumentsState.column_options,
            name=role,
            id=f"column-{role}",
            default_value=NO_COLUMN if optional else None,
            required=not optional,
        ),
        spacing="1",
    )


def _template_fields() -> rx.Component:
    """A question and an answer written over several columns: one example per row."""
    return rx.vstack(
        rx.text(
            "Each row becomes one example. Write a column's name in braces to use its cell: ",
            rx.foreach(
                DocumentsState.column_options,
                lambda name: rx.code("{" + name + "}", margin_right="0.3em"),
            ),
            size="1",
        ),
        rx.text("Question", size="1"),
        rx.input(
            name="question_template",
            id="question-template",
            default_value=DocumentsState.question_template,
            placeholder="What does {name} cost?",
            required=True,
            width="100%",
        ),
        rx.text("Answer", size="1"),
        rx.text_area(
            name="answer_template",
            id="answer-template",
            default_value=DocumentsState.answer_template,
            placeholder="{name} costs {price}. {description}",
            required=True,
            width="100%",
        ),
        width="100%",
        spacing="1",
    )


def _columns_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.text(
                "Which columns of ", rx.code(DocumentsState.column_doc_name), " should be read?"
            ),
            rx.radio_group(
                ["instruction", "text", "template"],
                value=DocumentsState.column_mode,
                on_change=DocumentsState.set_column_mode,
                direction="row",
                id="column-mode",
                name="column_mode",
            ),
            rx.match(
                DocumentsState.column_mode,
                ("text", rx.hstack(_column_select("text", "Text column"))),
                ("template", _template_fields()),
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
                    "Cancel", variant="soft", type="button", on_click=DocumentsState.close_columns
                ),
            ),
            id="columns-form",
        ),
        on_submit=DocumentsState.save_columns,
    )


def documents_card() -> rx.Component:
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
            on_click=DocumentsState.handle_upload(rx.upload_files_chunk(upload_id=UPLOAD_ID)),
        ),
        rx.foreach(
            DocumentsState.uploads,
            lambda item: rx.text(item[0], ": ", item[1], size="2", class_name="upload-status"),
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="url", placeholder="https://example.org/guide", id="url", width="100%"
                ),
                rx.checkbox("Crawl the site", name="crawl", id="crawl"),
                submit_button("Fetch", loading=DocumentsState.fetching, id="fetch"),
                width="100%",
                align="center",
            ),
            on_submit=DocumentsState.fetch_url,
            reset_on_submit=True,
        ),
        data_table(DataState.documents, _document_view),
        rx.cond(DocumentsState.column_doc != "", _columns_form()),
        width="100%",
    )

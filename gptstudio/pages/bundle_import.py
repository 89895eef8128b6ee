"""Import an assistant from an export bundle (``/assistants/import``): upload the ``.tar`` another
GPT Studio installation exported, follow it being received, checked and recreated, and see the
assistants imported so far. The work is :func:`gptstudio.services.bundle.import_bundle`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import reflex as rx

from gptstudio.components.layout import link_button, page
from gptstudio.components.tables import data_table
from gptstudio.models import Role
from gptstudio.pages.registry import add_page
from gptstudio.services import bundle
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error

UPLOAD_ID = "bundle"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _when(iso: str) -> str:
    """``2026-12-06 14:24 UTC`` from an ISO time; the text itself when it is not one."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


class BundleImportState(AuthState):
    error: str = ""
    busy: bool = False
    step: str = ""
    percent: int = 0
    imported: list[dict[str, str]] = []
    done_slug: str = ""
    done_id: str = ""

    @rx.event
    def load(self) -> Any:
        refused = self._guard(Role.creator)
        if refused is not None:
            return refused
        self.error, self.step, self.percent, self.done_slug = "", "", 0, ""
        self._refresh()
        return None

    def _refresh(self) -> None:
        self.imported = [
            {
                **{k: str(row.get(k, "")) for k in ("assistant", "slug", "version", "status")},
                "from": str(row.get("from", "")),
                "imported_at": _when(str(row.get("imported_at", ""))),
            }
            for row in bundle.imported_versions(actor=self._actor())
        ]

    @rx.event(background=True)
    @shows_error
    async def handle_upload(self, chunks: rx.UploadChunkIterator) -> Any:
        async with self:
            actor = self._actor()
            self.busy, self.error, self.done_slug, self.percent = True, "", "", 0
            self.step = "receiving the bundle"
        upload = bundle.BundleUpload()
        try:
            async for chunk in chunks:
                await asyncio.to_thread(upload.write, chunk.data)
                async with self:
                    self.step = f"receiving the bundle ({_mib(upload.size)})"
            archive = upload.finish()
            made = await self._import(actor, archive)
        finally:
            upload.discard()
            async with self:
                self.busy = False
        async with self:
            self.step, self.percent = "done", 100
            self.done_slug, self.done_id = made.slug, str(made.id)
            self._refresh()
        return [
            rx.clear_selected_files(UPLOAD_ID),
            rx.toast.success(f"Imported “{made.name}”; its version is published."),
        ]

    async def _import(self, actor: Any, archive: Any) -> Any:
        """Run the import in a thread; its steps (checksums as a percentage) show meanwhile."""
        seen = {"step": "unpacking", "fraction": 0.0}

        def step(name: str, fraction: float) -> None:
            seen.update(step=name, fraction=fraction)

        work = asyncio.ensure_future(
            asyncio.to_thread(bundle.import_bundle, actor=actor, archive=archive, step=step)
        )
        while not work.done():
            await asyncio.wait({work}, timeout=0.5)
            async with self:
                self.step, self.percent = str(seen["step"]), int(100 * float(seen["fraction"]))
        return work.result()


def _row(item: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(item["assistant"]),
        rx.table.cell("v", item["version"]),
        rx.table.cell(rx.badge(item["status"])),
        rx.table.cell(item["from"]),
        rx.table.cell(item["imported_at"]),
        class_name="imported-row",
    )


@add_page(
    route="/assistants/import", title="Import a bundle · GPT Studio", on_load=BundleImportState.load
)
def bundle_import_page() -> rx.Component:
    return page(
        rx.heading("Import an assistant", size="7"),
        rx.text(
            "Upload a bundle (.tar) exported from a model version on the training page of any "
            "GPT Studio installation. Every file is checked against the bundle's checksums and "
            "the base model must be one this installation offers; the assistant is then "
            "recreated for you with that version published.",
            color_scheme="gray",
        ),
        rx.cond(
            BundleImportState.error != "",
            rx.callout(
                BundleImportState.error,
                icon="triangle_alert",
                color_scheme="red",
                id="form-error",
            ),
        ),
        rx.card(
            rx.upload.root(
                rx.vstack(
                    rx.icon("package"),
                    rx.text("Drop the bundle (.tar) here, or click to choose it."),
                    align="center",
                    padding="1.5em",
                ),
                id=UPLOAD_ID,
                multiple=False,
                accept={"application/x-tar": [".tar"]},
                border="1px dashed var(--gray-7)",
                border_radius="8px",
                width="100%",
            ),
            rx.hstack(rx.foreach(rx.selected_files(UPLOAD_ID), rx.badge), wrap="wrap"),
            rx.button(
                "Import",
                id="import-button",
                loading=BundleImportState.busy,
                disabled=~rx.State.is_hydrated,
                on_click=BundleImportState.handle_upload(
                    rx.upload_files_chunk(upload_id=UPLOAD_ID)
                ),
            ),
            rx.cond(
                BundleImportState.step != "",
                rx.vstack(
                    rx.progress(value=BundleImportState.percent, max=100, width="100%"),
                    rx.text(
                        BundleImportState.step,
                        " · ",
                        BundleImportState.percent,
                        " %",
                        size="2",
                        id="import-step",
                    ),
                    width="100%",
                ),
            ),
            rx.cond(
                BundleImportState.done_slug != "",
                rx.hstack(
                    link_button(
                        "Open its settings",
                        "/assistant/settings?id=" + BundleImportState.done_id,
                        size="1",
                        variant="soft",
                    ),
                    link_button(
                        "Chat with it",
                        "/chat?assistant=" + BundleImportState.done_slug,
                        size="1",
                        variant="soft",
                    ),
                    id="import-done",
                ),
            ),
            width="100%",
        ),
        rx.heading("Imported so far", size="4"),
        data_table(
            BundleImportState.imported,
            _row,
            headers=("Assistant", "Version", "Status", "Exported from", "Imported at"),
        ),
    )

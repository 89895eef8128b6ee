"""The jobs card (every job: status, queue position, progress, loss, speed, ETA; cancel one) and
the live card of the selected job (progress, error, loss chart). :class:`JobsState` selects and
cancels jobs."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.badges import status_badge
from gptstudio.components.charts import loss_chart
from gptstudio.components.tables import data_table
from gptstudio.pages.training.state import TrainingState, whole_number
from gptstudio.services import training
from gptstudio.state.errors import toasts_error


class JobsState(TrainingState):
    @rx.event
    @toasts_error
    def cancel(self, job_id: Any) -> Any:
        training.cancel_job(actor=self._actor(), job_id=whole_number(job_id, "job"),
                            client=self._client())  # fmt: skip
        self._refresh()
        return rx.toast.info("Cancelling: the job stops after its current step.")

    @rx.event
    @toasts_error
    def resume(self, job_id: Any) -> Any:
        training.resume_job(actor=self._actor(), job_id=whole_number(job_id, "job"),
                            client=self._client())  # fmt: skip
        self._refresh()
        return rx.toast.info("Resuming from where the job stopped.")

    @rx.event
    @toasts_error
    def remove_checkpoints(self, job_id: Any) -> Any:
        training.remove_checkpoints(actor=self._actor(), job_id=whole_number(job_id, "job"),
                                    client=self._client())  # fmt: skip
        self._refresh()
        return rx.toast.info("The job's checkpoints are deleted; it cannot be resumed.")

    @rx.event
    @toasts_error
    def select_job(self, job_id: Any) -> None:
        self.selected_job = str(job_id or "")
        self._refresh()


def js_number(value: rx.Var) -> rx.Var[int]:
    """A row's string as a number in the page's JavaScript: ``.to(int)`` only changes the Python
    type, so Radix's Progress got a string ("Invalid prop `value`" in the console)."""
    return rx.Var(_js_expr=f"Number({value!s})", _var_type=int, _var_data=value._get_all_var_data())


def _job_status(status: rx.Var[str]) -> rx.Component:
    return status_badge(status, succeeded="green", failed="red", cancelled="gray")


def _job_view(j: rx.Var[dict[str, str]]) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link("#", j["id"], on_click=JobsState.select_job(j["id"]))),
        rx.table.cell(_job_status(j["status"])),
        rx.table.cell(j["position"]),
        rx.table.cell(rx.progress(value=js_number(j["percent"]), width="8em")),
        rx.table.cell(j["step"]),
        rx.table.cell(j["loss"]),
        rx.table.cell(j["speed"]),
        rx.table.cell(j["eta"]),
        rx.table.cell(
            rx.cond(
                (j["status"] == "queued") | (j["status"] == "running"),
                rx.button(
                    "Cancel",
                    size="1",
                    color_scheme="red",
                    variant="soft",
                    on_click=JobsState.cancel(j["id"]),
                    class_name="job-cancel",
                ),
            ),
            rx.cond(
                j["resumable"] == "yes",
                rx.hstack(
                    rx.button(
                        "Resume",
                        size="1",
                        variant="soft",
                        on_click=JobsState.resume(j["id"]),
                        class_name="job-resume",
                    ),
                    rx.button(
                        "Delete checkpoints",
                        size="1",
                        color_scheme="gray",
                        variant="soft",
                        on_click=JobsState.remove_checkpoints(j["id"]),
                        class_name="job-remove-checkpoints",
                    ),
                ),
            ),
        ),
        class_name="job-row",
    )


def jobs_card() -> rx.Component:
    headers = ("Job", "Status", "Queue", "Progress", "Step", "Loss", "Tokens/s", "ETA", "")
    return rx.card(
        rx.heading("Jobs", size="4"),
        data_table(TrainingState.jobs, _job_view, headers=headers),
        width="100%",
    )


def live_card() -> rx.Component:
    job = TrainingState.current
    return rx.card(
        rx.hstack(
            rx.heading("Job ", job["id"], size="4"),
            _job_status(job["status"]),
            rx.text(
                job["preset"],
                " · ",
                job["method"],
                " · ",
                job["epochs"],
                " epochs",
                size="2",
                color_scheme="gray",
            ),
            rx.spacer(),
            rx.text(
                "lr ", job["lr"], " · ", job["speed"], " tokens/s · ETA ", job["eta"], size="2"
            ),
            width="100%",
            align="center",
        ),
        rx.cond(
            job["api"] != "",
            rx.text(
                "Started through the fine-tuning API: ", rx.code(job["api"]), size="2", id="job-api"
            ),
        ),
        rx.progress(value=js_number(job["percent"]), width="100%", id="job-progress"),
        rx.cond(job["error"] != "", rx.callout(job["error"], color_scheme="red", id="job-error")),
        rx.cond(job["data_note"] != "", rx.text(job["data_note"], size="2", id="job-data-note")),
        loss_chart(
            data=TrainingState.chart,
            domain=TrainingState.chart_domain,
            threshold=TrainingState.gate_threshold,
        ),
        rx.text(TrainingState.chart_note, size="1", color_scheme="gray", id="chart-note"),
        width="100%",
    )

"""Fine-tuning an assistant: launch a job on a dataset version, follow it live (loss chart,
progress, tokens/s, ETA), cancel it, compare base and tuned answers, and publish a version (or
be stopped by the knowledge-gain gate, with the numbers)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button, table_header
from gptstudio.errors import DomainError
from gptstudio.models import ModelVersion, TrainingJob
from gptstudio.services import dataset, training
from gptstudio.state.live import follow
from gptstudio.state.owned_assistant import AssistantPageState, assistant_header

WATCH_SECONDS = 6 * 60 * 60
PRESETS = ["auto", "quick", "balanced", "thorough"]
METHODS = ["lora", "qlora-4bit", "qlora-8bit"]


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"


def _job_row(job: TrainingJob) -> dict[str, str]:
    p = job.progress or {}
    total = int(p.get("total_steps") or 0)
    step = int(p.get("step") or 0)
    return {
        "id": str(job.id),
        "status": job.status,
        "dataset": str(job.dataset_id),
        "position": str(training.queue_position(job) or ""),
        "percent": str(
            int(100 * step / total) if total else (100 if job.status == "succeeded" else 0)
        ),
        "step": f"{step}/{total}" if total else "—",
        "loss": _number(p.get("loss")),
        "eval_loss": _number(p.get("eval_loss")),
        "lr": _number(p.get("learning_rate"), 6),
        "speed": _number(p.get("tokens_per_second"), 0),
        "eta": _eta(p.get("eta_seconds")),
        "error": job.error,
        "method": str(job.config.get("method", "")),
        "preset": str(job.config.get("preset", "")),
    }


def _change(base: dict[str, Any], tuned: dict[str, Any], key: str) -> str:
    return f"{_number(base.get(key), 2)} → {_number(tuned.get(key), 2)}"


def _version_row(version: ModelVersion) -> dict[str, str]:
    m = version.metrics
    gate = training.gate_of(version)
    base_qa, tuned_qa = m.get("base_qa") or {}, m.get("tuned_qa") or {}
    return {
        "id": str(version.id),
        "version": str(version.version),
        "status": version.status,
        "base_ppl": _number(m.get("base_perplexity"), 2),
        "tuned_ppl": _number(m.get("tuned_perplexity"), 2),
        "gain": f"{100 * gate['relative_gain']:.1f} %" if "relative_gain" in gate else "—",
        "passed": "yes" if gate.get("passed") else "no",
        "message": str(gate.get("message", "")),
        "qa": f"EM {_change(base_qa, tuned_qa, 'exact_match')}, "
        f"F1 {_change(base_qa, tuned_qa, 'f1')}",
        "override": version.gate_override_reason,
        "export": version.export_path,
    }


class TrainingState(AssistantPageState):
    datasets: list[str] = []
    base_models: list[str] = []
    jobs: list[dict[str, str]] = []
    selected_job: str = ""
    chart: list[dict[str, float]] = []
    versions: list[dict[str, str]] = []
    samples: list[dict[str, str]] = []
    sample_version: str = ""
    watching: bool = False

    @rx.var
    def active(self) -> bool:
        return any(j["status"] in ("queued", "running") for j in self.jobs)

    @rx.var
    def version_ids(self) -> list[str]:
        return [v["id"] for v in self.versions]

    @rx.var
    def current(self) -> dict[str, str]:
        return next((j for j in self.jobs if j["id"] == self.selected_job), {})

    @rx.event
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        actor = self._actor()
        self.datasets = [
            str(d.version)
            for d in dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        ]
        self.base_models = [
            m["key"] if not m.get("hub_id") else m["hub_id"] for m in training.base_models()
        ]
        self._refresh()
        return TrainingState.watch if self.active else None

    def _refresh(self) -> None:
        actor = self._actor()
        jobs = training.list_jobs(actor=actor, assistant_id=self.assistant_id)
        self.jobs = [_job_row(j) for j in jobs]
        if jobs and not any(j["id"] == self.selected_job for j in self.jobs):
            self.selected_job = self.jobs[0]["id"]
        chosen = next((j for j in jobs if str(j.id) == self.selected_job), None)
        self.chart = [
            {k: float(v) for k, v in point.items() if isinstance(v, (int, float))}
            for point in (chosen.history if chosen else [])
        ]
        versions = training.list_versions(actor=actor, assistant_id=self.assistant_id)
        self.versions = [_version_row(v) for v in versions]
        shown = next(
            (v for v in versions if str(v.id) == self.sample_version),
            versions[0] if versions else None,
        )
        self.sample_version = str(shown.id) if shown else ""
        self.samples = [
            {
                k: str(row.get(k, ""))
                for k in ("question", "reference", "base_answer", "tuned_answer")
            }
            for row in (shown.metrics.get("samples", []) if shown else [])
        ]

    def _pending(self) -> bool:
        return bool(self.active)

    @rx.event(background=True)
    async def watch(self) -> None:
        """Follow queued and running jobs until none is left (or six hours pass)."""
        await follow(self, seconds=WATCH_SECONDS)

    @rx.event
    def launch(self, form: dict[str, Any]) -> Any:
        self.error = ""
        actor = self._actor()
        versions = {
            str(d.version): d.id
            for d in dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        }
        overrides: dict[str, Any] = {}
        try:
            if str(form.get("max_steps", "")).strip():
                overrides["max_steps"] = int(str(form["max_steps"]))
            job = training.start_job(
                actor=actor,
                dataset_id=int(versions.get(str(form.get("dataset", "")), 0) or 0),
                base_model=str(form.get("base_model", "")),
                preset=str(form.get("preset") or "auto"),
                method=str(form.get("method") or "lora"),
                overrides=overrides,
            )
        except ValueError:
            self.error = "Max steps must be a whole number."
            return None
        except DomainError as error:
            self.error = str(error)
            return None
        self.selected_job = str(job.id)
        self._refresh()
        return [rx.toast.success(f"Job {job.id} queued."), TrainingState.watch]

    @rx.event
    def cancel(self, job_id: str) -> Any:
        training.cancel_job(actor=self._actor(), job_id=int(job_id), client=self._client())
        self._refresh()
        return rx.toast.info("Cancelling: the job stops after its current step.")

    @rx.event
    def select_job(self, job_id: str) -> None:
        self.selected_job = job_id
        self._refresh()

    @rx.event
    def show_samples(self, version_id: str) -> None:
        self.sample_version = version_id
        self._refresh()

    @rx.event
    def publish(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            published = training.publish(
                actor=self._actor(),
                version_id=int(str(form.get("version_id", "0"))),
                override_reason=str(form.get("reason", "")),
                client=self._client(),
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh()
        return rx.toast.success(f"Version {published.version} is live.")

    @rx.event
    def export(self, version_id: str) -> Any:
        training.request_export(actor=self._actor(), version_id=int(version_id))
        return rx.toast.info("Exporting a merged model; its folder appears here when done.")


def _launch_card() -> rx.Component:
    return rx.card(
        rx.heading("New fine-tune", size="4"),
        rx.form(
            rx.grid(
                rx.vstack(
                    rx.text("Dataset version", size="2"),
                    rx.select(
                        TrainingState.datasets,
                        name="dataset",
                        id="job-dataset",
                        placeholder="version",
                    ),
                ),
                rx.vstack(
                    rx.text("Base model", size="2"),
                    rx.select(
                        TrainingState.base_models,
                        name="base_model",
                        id="job-base",
                        placeholder="configured default",
                    ),
                ),
                rx.vstack(
                    rx.text("Preset", size="2"),
                    rx.select(PRESETS, name="preset", default_value="auto", id="job-preset"),
                ),
                rx.vstack(
                    rx.text("Method", size="2"),
                    rx.select(METHODS, name="method", default_value="lora", id="job-method"),
                ),
                rx.vstack(
                    rx.text("Max steps (optional)", size="2"),
                    rx.input(name="max_steps", type="number", id="job-steps"),
                ),
                columns="5",
                spacing="3",
                width="100%",
            ),
            submit_button("Start training", id="job-start", margin_top="1em"),
            on_submit=TrainingState.launch,
            reset_on_submit=False,
        ),
        width="100%",
    )


def _status(status: rx.Var[str]) -> rx.Component:
    return rx.badge(
        status,
        color_scheme=rx.match(
            status, ("succeeded", "green"), ("failed", "red"), ("cancelled", "gray"), "orange"
        ),
    )


def _jobs_card() -> rx.Component:
    return rx.card(
        rx.heading("Jobs", size="4"),
        rx.table.root(
            table_header(
                "Job", "Status", "Queue", "Progress", "Step", "Loss", "Tokens/s", "ETA", ""
            ),
            rx.table.body(
                rx.foreach(
                    TrainingState.jobs,
                    lambda j: rx.table.row(
                        rx.table.cell(
                            rx.link("#", j["id"], on_click=TrainingState.select_job(j["id"]))
                        ),
                        rx.table.cell(_status(j["status"])),
                        rx.table.cell(j["position"]),
                        rx.table.cell(rx.progress(value=j["percent"].to(int), width="8em")),
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
                                    on_click=TrainingState.cancel(j["id"]),
                                    class_name="job-cancel",
                                ),
                            )
                        ),
                        class_name="job-row",
                    ),
                )
            ),
            width="100%",
        ),
        width="100%",
    )


def _live_card() -> rx.Component:
    job = TrainingState.current
    return rx.card(
        rx.hstack(
            rx.heading("Job ", job["id"], size="4"),
            _status(job["status"]),
            rx.text(job["preset"], " · ", job["method"], size="2", color_scheme="gray"),
            rx.spacer(),
            rx.text(
                "lr ", job["lr"], " · ", job["speed"], " tokens/s · ETA ", job["eta"], size="2"
            ),
            width="100%",
            align="center",
        ),
        rx.progress(value=job["percent"].to(int), width="100%", id="job-progress"),
        rx.cond(job["error"] != "", rx.callout(job["error"], color_scheme="red", id="job-error")),
        rx.recharts.line_chart(
            rx.recharts.line(data_key="loss", stroke="#3e63dd", dot=False, name="training loss"),
            rx.recharts.line(
                data_key="eval_loss", stroke="#e5484d", name="eval loss", connect_nulls=True
            ),
            rx.recharts.x_axis(data_key="step"),
            rx.recharts.y_axis(),
            rx.recharts.legend(),
            rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
            rx.recharts.graphing_tooltip(),
            data=TrainingState.chart,
            width="100%",
            height=280,
            id="loss-chart",
        ),
        width="100%",
    )


def _versions_card() -> rx.Component:
    return rx.card(
        rx.heading("Model versions", size="4"),
        rx.table.root(
            table_header("Version", "Status", "Base ppl", "Tuned ppl", "Gain", "Gate", "QA", ""),
            rx.table.body(
                rx.foreach(
                    TrainingState.versions,
                    lambda v: rx.table.row(
                        rx.table.cell("v", v["version"]),
                        rx.table.cell(rx.badge(v["status"])),
                        rx.table.cell(v["base_ppl"]),
                        rx.table.cell(v["tuned_ppl"]),
                        rx.table.cell(v["gain"]),
                        rx.table.cell(
                            rx.badge(
                                v["passed"],
                                color_scheme=rx.cond(v["passed"] == "yes", "green", "red"),
                            ),
                            rx.text(v["message"], size="1", color_scheme="gray", max_width="22em"),
                        ),
                        rx.table.cell(rx.text(v["qa"], size="1")),
                        rx.table.cell(
                            rx.hstack(
                                rx.button(
                                    "Samples",
                                    size="1",
                                    variant="soft",
                                    on_click=TrainingState.show_samples(v["id"]),
                                ),
                                rx.button(
                                    "Export",
                                    size="1",
                                    variant="soft",
                                    on_click=TrainingState.export(v["id"]),
                                ),
                                rx.cond(v["export"] != "", rx.code(v["export"])),
                            )
                        ),
                        class_name="version-row",
                    ),
                )
            ),
            width="100%",
        ),
        rx.form(
            rx.hstack(
                rx.select(
                    TrainingState.versions.foreach(lambda v: v["id"]),
                    name="version_id",
                    placeholder="version id",
                    id="publish-version",
                ),
                rx.input(
                    name="reason",
                    placeholder="Reason to publish despite the gate (optional)",
                    width="24em",
                    id="publish-reason",
                ),
                submit_button("Publish", id="publish"),
                align="center",
            ),
            on_submit=TrainingState.publish,
        ),
        width="100%",
    )


def _samples_card() -> rx.Component:
    return rx.card(
        rx.heading("Base vs tuned answers", size="4"),
        rx.table.root(
            table_header("Question", "Reference", "Base model", "Tuned model"),
            rx.table.body(
                rx.foreach(
                    TrainingState.samples,
                    lambda s: rx.table.row(
                        *[
                            rx.table.cell(rx.text(s[k], size="1"))
                            for k in ("question", "reference", "base_answer", "tuned_answer")
                        ],
                        class_name="sample-row",
                    ),
                )
            ),
            width="100%",
        ),
        width="100%",
    )


@rx.page(route="/assistant/training", title="Training · GPT Studio", on_load=TrainingState.load)
def training_page() -> rx.Component:
    return page(
        assistant_header(),
        form_error(TrainingState.error),
        _launch_card(),
        rx.cond(TrainingState.jobs.length() > 0, _jobs_card()),
        rx.cond(TrainingState.selected_job != "", _live_card()),
        rx.cond(TrainingState.versions.length() > 0, _versions_card()),
        rx.cond(TrainingState.samples.length() > 0, _samples_card()),
        max_width="1200px",
    )

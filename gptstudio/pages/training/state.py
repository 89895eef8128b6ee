"""What every card of the training page shows, and following the queue: :class:`TrainingState`
loads the dataset versions and base models to choose from, the jobs (with the selected job's
loss history) and the model versions (with one version's sample answers), and refreshes them
while a job is queued or running. Each card's handlers live in a substate beside its
components."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.charts import gate_loss, loss_domain, loss_rows
from gptstudio.errors import InvalidInput
from gptstudio.models import ModelVersion, TrainingJob
from gptstudio.services import dataset, fine_tuning, training
from gptstudio.services.publish_gate import gate_margin
from gptstudio.state.live import follow
from gptstudio.state.owned_assistant import AssistantPageState

WATCH_SECONDS = 6 * 60 * 60
NO_THRESHOLD = "-1"  # below any loss: the chart leaves the gate's line out
EMPTY_ANSWER = "(empty answer: the model generated no text)"


MAX_ID = 2**31 - 1  # a database integer: a larger id sent by hand is no id at all


def whole_number(value: Any, what: str) -> int:
    """An id sent by the browser; anything else is a message, not a crash."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"Choose a {what} first.") from None
    if not 0 < number <= MAX_ID:
        raise InvalidInput(f"There is no such {what}.")
    return number


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"


def _job_row(job: TrainingJob, api: str = "") -> dict[str, str]:
    """A job for the page; ``api``: its fine-tuning API id and model, when it came that way."""
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
        "resumable": "yes" if training.can_resume(job) else "",
        "data_note": _data_note(p.get("data")),
        "method": str(job.config.get("method", "")),
        "preset": str(job.config.get("preset", "")),
        "epochs": str(job.config.get("epochs", "")),
        "api": api,
    }


def _data_note(data: Any) -> str:
    """What tokenisation did to the training examples, when it cut or dropped any."""
    train = data.get("train") if isinstance(data, dict) else None
    if not isinstance(train, dict) or not (train.get("truncated") or train.get("dropped")):
        return ""
    return (
        f"{train.get('truncated', 0)} training examples were cut to the sequence length and "
        f"{train.get('dropped', 0)} dropped (no answer token left within it)."
    )


def _scored_note(metrics: dict[str, Any]) -> str:
    """Evaluation scores answers within the training length: say how much that kept."""
    scored, whole = metrics.get("target_tokens"), metrics.get("answer_tokens")
    if not isinstance(scored, int) or not isinstance(whole, int) or scored >= whole:
        return ""
    return (
        f"{scored:,} of {whole:,} answer tokens scored (answers cut at "
        f"{metrics.get('sequence_length', 0):,} tokens)"
    )


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
        "scored": _scored_note(m),
        "gain": f"{100 * gate['relative_gain']:.1f} %" if "relative_gain" in gate else "—",
        "passed": "yes" if gate.get("passed") else "no",
        "message": str(gate.get("message", "")),
        "qa": f"EM {_change(base_qa, tuned_qa, 'exact_match')}, "
        f"F1 {_change(base_qa, tuned_qa, 'f1')}",
        "override": version.gate_override_reason,
        **_export_fields(version),
        "held_out": " ".join(
            [_held_out_text(m.get("held_out"))]
            + [f"Training: {note}." for note in (version.report or {}).get("notes", [])]
        ).strip(),
    }


def _export_fields(version: ModelVersion) -> dict[str, str]:
    """The export bundle's download, or its build's progress (step and percent) or error."""
    progress = version.export_progress or {}
    state = str(progress.get("state", ""))
    ready = bool(version.export_path) and state in ("", "done")
    fraction = progress.get("fraction")
    size = progress.get("bytes")
    return {
        "export": f"/api/model-versions/{version.id}/export.tar" if ready else "",
        "export_state": state if state in ("queued", "running", "failed") else "",
        "export_step": str(progress.get("step", "")),
        "export_percent": str(int(100 * fraction)) if isinstance(fraction, (int, float)) else "0",
        "export_error": str(progress.get("error", "")) if state == "failed" else "",
        "export_size": f"{size / 2**20:,.1f} MiB" if isinstance(size, int) and ready else "",
    }


def _held_out_text(held_out: Any) -> str:
    """Which split the gate measured, and why when it is not the test split."""
    if not isinstance(held_out, dict):
        return ""
    used = f"measured on {held_out.get('examples', 0)} examples ({held_out.get('split', '?')})"
    return f"{used}. {held_out['note']}" if held_out.get("note") else used


def split_summary(counts: Any) -> str:
    """A dataset version's splits, and what the gate will measure when its test split is empty."""
    splits = counts.get("splits") if isinstance(counts, dict) else None
    splits = splits if isinstance(splits, dict) else {}
    sizes = {name: int(splits.get(name, 0) or 0) for name in ("train", "validation", "test")}
    text = " · ".join(f"{n} {name}" for name, n in sizes.items())
    if sizes["test"]:
        return text
    instead = (
        "the validation split"
        if sizes["validation"]
        else "examples held out of training, if there are 20 or more, else nothing"
    )
    return (
        f"{text}. The test split is empty (its documents could not be spared), so the gate "
        f"will measure {instead}."
    )


def _sample(row: Any) -> dict[str, str]:
    """One base-vs-tuned row; an empty generated answer says so instead of an empty cell."""
    texts = {k: str(row.get(k, "") or "") for k in ("question", "reference")}
    for key in ("base_answer", "tuned_answer"):
        texts[key] = str(row.get(key, "") or "").strip() or EMPTY_ANSWER
    return texts


class TrainingState(AssistantPageState):
    datasets: list[str] = []
    dataset_choice: str = ""  # the newest version unless the creator picks another
    dataset_splits: dict[str, str] = {}  # version -> its split sizes (and the gate's fallback)
    base_models: list[str] = []
    jobs: list[dict[str, str]] = []
    selected_job: str = ""
    chart: list[dict[str, float]] = []
    chart_domain: list[float] = [0.0, 1.0]
    gate_threshold: str = NO_THRESHOLD  # recharts takes a reference line's y as a number or text
    chart_note: str = ""
    versions: list[dict[str, str]] = []
    publish_choice: str = ""  # a version number; the newest unless the creator picks another
    samples: list[dict[str, str]] = []
    sample_version: str = ""
    watching: bool = False

    @rx.var
    def active(self) -> bool:
        return any(j["status"] in ("queued", "running") for j in self.jobs)

    @rx.var
    def current(self) -> dict[str, str]:
        return next((j for j in self.jobs if j["id"] == self.selected_job), {})

    @rx.event
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        self.base_models = [
            m["key"] if not m.get("hub_id") else m["hub_id"] for m in training.base_models()
        ]
        self._refresh()
        return TrainingState.watch if self._pending() else None

    def _refresh(self) -> None:
        actor = self._actor()
        found = dataset.list_datasets(actor=actor, assistant_id=self.assistant_id)
        self.datasets = [str(d.version) for d in found]
        self.dataset_splits = {str(d.version): split_summary(d.counts) for d in found}
        if self.dataset_choice not in self.datasets:
            self.dataset_choice = self.datasets[0] if self.datasets else ""
        jobs = training.list_jobs(actor=actor, assistant_id=self.assistant_id)
        labels = fine_tuning.api_labels([j.id or 0 for j in jobs])
        self.jobs = [_job_row(j, labels.get(j.id or 0, "")) for j in jobs]
        if jobs and not any(j["id"] == self.selected_job for j in self.jobs):
            self.selected_job = self.jobs[0]["id"]
        chosen = next((j for j in jobs if str(j.id) == self.selected_job), None)
        versions = training.list_versions(actor=actor, assistant_id=self.assistant_id)
        self._chart(chosen, versions)
        self.versions = [_version_row(v) for v in versions]
        if self.publish_choice not in [v["version"] for v in self.versions]:
            self.publish_choice = self.versions[0]["version"] if self.versions else ""
        shown = next(
            (v for v in versions if str(v.id) == self.sample_version),
            versions[0] if versions else None,
        )
        self.sample_version = str(shown.id) if shown else ""
        self.samples = [_sample(row) for row in (shown.metrics.get("samples", []) if shown else [])]

    def _chart(self, job: TrainingJob | None, versions: list[ModelVersion]) -> None:
        """The selected job's losses, scaled to the data, with the gate's line once the job's
        evaluation has measured the base model."""
        rows = loss_rows(job.history if job else [])
        produced = next((v for v in versions if job and v.training_job_id == job.id), None)
        gate = training.gate_of(produced) if produced else {}
        margin = gate.get("margin", gate_margin())
        base = produced.metrics.get("base_perplexity") if produced else None
        threshold = gate_loss(base, float(margin) if isinstance(margin, (int, float)) else 0.0)
        self.chart = rows
        self.chart_domain = loss_domain(rows, threshold=threshold)
        self.gate_threshold = f"{threshold:.4f}" if threshold is not None else NO_THRESHOLD
        self.chart_note = (
            f"The gate asks for held-out loss at most {threshold:.3f} (base perplexity less "
            f"{float(margin):.0%})."
            if threshold is not None
            else "The gate's line appears once the job's evaluation has measured the base model."
        )

    @rx.event
    def choose_dataset(self, value: Any) -> None:
        self.dataset_choice = str(value or "")

    @rx.event
    def choose_version(self, value: Any) -> None:
        self.publish_choice = str(value or "")

    def _pending(self) -> bool:
        return bool(self.active) or any(
            v["export_state"] in ("queued", "running") for v in self.versions
        )

    @rx.event(background=True)
    async def watch(self) -> None:
        """Follow queued and running jobs until none is left (or six hours pass)."""
        await follow(self, seconds=WATCH_SECONDS)

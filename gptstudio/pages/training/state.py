"""What every card of the training page shows, and following the queue: :class:`TrainingState`
loads the dataset versions and base models to choose from, the jobs (with the selected job's
loss history) and the model versions (with one version's sample answers), and refreshes them
while a job is queued or running. Each card's handlers live in a substate beside its
components."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.models import ModelVersion, TrainingJob
from gptstudio.services import dataset, training
from gptstudio.state.live import follow
from gptstudio.state.owned_assistant import AssistantPageState

WATCH_SECONDS = 6 * 60 * 60


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
        "resumable": "yes" if training.can_resume(job) else "",
        "data_note": _data_note(p.get("data")),
        "method": str(job.config.get("method", "")),
        "preset": str(job.config.get("preset", "")),
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

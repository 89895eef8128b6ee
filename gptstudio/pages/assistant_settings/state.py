"""What the settings cards show: :class:`SettingsState` loads the profile, the retrieval settings
and the sources index, and the rollout (versions, split, per-version stats) with recent feedback.
Each card's handlers live in a substate beside its components."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.services import assistant_settings, erasure, feedback, rollout, training
from gptstudio.state.live import follow
from gptstudio.state.owned_assistant import AssistantPageState

NO_RETRIEVAL = "Retrieval is not available yet."


def _ms(value: int | None) -> str:
    return "—" if value is None else f"{value} ms"


def describe_index(status: Any) -> str:
    """One line about the sources index (``services.retrieval.IndexStatus``)."""
    state = getattr(status, "state", "")
    if state == "none":
        text = "Not built yet."
    elif state == "building":
        step = getattr(status, "step", "")
        text = f"Building ({step})…" if step else "Building…"
    elif state == "ready":
        text = (
            f"Ready: {getattr(status, 'chunks', 0)} passages from dataset version "
            f"{getattr(status, 'dataset_version', '?')}."
        )
        if getattr(status, "outdated", False):
            text += " A newer dataset version exists: rebuild to include it."
    else:
        text = str(status)
    error = getattr(status, "error", "")
    return f"{text} Last build failed: {error}" if error else text


class SettingsState(AssistantPageState):
    name: str = ""
    description: str = ""
    system_prompt: str = ""
    rag_enabled: bool = False
    top_k_text: str = "4"
    rag_originals: bool = False
    welcome_message: str = ""
    starters_text: str = ""
    index_text: str = ""
    index_building: bool = False
    watching: bool = False
    current_label: str = "none"
    candidate_label: str = ""
    candidate_percent: int = 0
    previous_label: str = ""
    choices: list[dict[str, str]] = []
    chosen: str = ""
    stats: list[dict[str, str]] = []
    chart: list[dict[str, Any]] = []
    ab_summary: str = ""  # the candidate's thumbs-down rate and latency against the current's
    rated: list[dict[str, str]] = []
    # What deleting it takes with it (the deletion card says so before the creator confirms).
    impact_text: str = ""

    @rx.var
    def splitting(self) -> bool:
        return self.candidate_label != "" and self.candidate_percent > 0

    @rx.event
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        found = assistant_settings.get_settings_of(
            actor=self._actor(), assistant_id=self.assistant_id
        )
        self.name, self.description = found.name, found.description
        self.system_prompt = found.system_prompt
        self.rag_enabled, self.top_k_text = found.rag_enabled, str(found.rag_top_k)
        self.rag_originals = found.rag_originals_for_subscribers
        self.welcome_message = found.welcome_message
        self.starters_text = "\n".join(found.conversation_starters)
        self._refresh_index()
        self._refresh_rollout()
        self._refresh_impact()
        return SettingsState.follow_index if self.index_building else None

    def _refresh_impact(self) -> None:
        impact = erasure.assistant_impact(actor=self._actor(), assistant_id=self.assistant_id)
        paid = (
            f", and {impact.paid_subscribers} paid plan(s) are cancelled in Stripe at once "
            "(no further charge)"
            if impact.paid_subscribers
            else ""
        )
        self.impact_text = (
            f"Deleting {impact.name} removes its {impact.documents} document(s), datasets, "
            f"{impact.versions} trained version(s), retrieval index and every file on disk; "
            f"it stops being served. Its {impact.subscribers} subscriber(s) lose access"
            f"{paid}. Their conversations with it are deleted; invoices are kept."
        )

    def _refresh_index(self) -> None:
        try:
            from gptstudio.services import retrieval
        except ImportError:
            self.index_text = NO_RETRIEVAL
            return
        status = retrieval.index_status(actor=self._actor(), assistant_id=self.assistant_id)
        self.index_text = describe_index(status)
        self.index_building = status.state == "building"

    def _refresh(self) -> None:
        self._refresh_index()

    def _pending(self) -> bool:
        return self.index_building

    @rx.event(background=True)
    async def follow_index(self) -> None:
        """Show the index build's progress until it ends (or half an hour passes)."""
        await follow(self, seconds=1800)

    def _refresh_rollout(self) -> None:
        actor = self._actor()
        state = rollout.get_rollout(actor=actor, assistant_id=self.assistant_id)
        versions = training.list_versions(actor=actor, assistant_id=self.assistant_id)
        label = {v.id: f"v{v.version}" for v in versions}
        self.current_label = label.get(state.current_version_id, "none")
        self.candidate_label = label.get(state.candidate_version_id, "")
        self.candidate_percent = state.candidate_percent
        self.previous_label = label.get(state.previous_version_id, "")
        self.choices = [
            {
                "id": str(v.id),
                "label": f"v{v.version} · gate "
                + ("passed" if training.gate_of(v).get("passed") else "not passed"),
            }
            for v in versions
            if v.id != state.current_version_id and v.adapter_path
        ]
        if self.chosen not in {c["id"] for c in self.choices}:
            self.chosen = str(state.candidate_version_id or "")
        stats = rollout.version_stats(actor=actor, assistant_id=self.assistant_id)
        self.stats = [
            {
                "version": f"v{s.version}",
                "role": s.role,
                "status": s.status,
                "conversations": str(s.conversations),
                "answers": str(s.answers),
                "up": str(s.thumbs_up),
                "down": str(s.thumbs_down),
                "down_rate": "—"
                if s.thumbs_down_rate is None
                else f"{100 * s.thumbs_down_rate:.0f}%",
                "p50": _ms(s.latency_p50_ms),
                "p95": _ms(s.latency_p95_ms),
            }
            for s in stats
        ]
        self.ab_summary = rollout.split_comparison(stats) if state.splitting else ""
        self.chart = [
            {
                "version": f"v{s.version}",
                "up": s.thumbs_up,
                "down": s.thumbs_down,
                "p50": s.latency_p50_ms or 0,
                "p95": s.latency_p95_ms or 0,
            }
            for s in reversed(stats)
            if s.answers
        ]
        self.rated = [
            {
                "id": str(r.message_id),
                "when": f"{r.created_at:%Y-%m-%d %H:%M}",
                "version": f"v{r.version}" if r.version else "—",
                "value": "up" if r.value > 0 else "down",
                "question": r.question,
                "answer": r.answer,
                "comment": r.comment,
            }
            for r in feedback.feedback_for(actor=actor, assistant_id=self.assistant_id, limit=30)
        ]

    @rx.event
    def refresh(self) -> None:
        self._refresh_index()
        self._refresh_rollout()

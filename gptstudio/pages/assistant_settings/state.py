"""Settings of one of the creator's assistants (``/assistant/settings?id=N``): name, description
and persona; retrieval (on/off, passages per answer, rebuild the sources index); versioned
rollout (current version, an A/B split with a candidate, promote, one-click rollback, feedback
and latency per version); and the subscribers' recent feedback."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button, table_header
from gptstudio.errors import DomainError
from gptstudio.services import assistant_settings, feedback, rollout, training
from gptstudio.state.owned_assistant import AssistantPageState, assistant_header

NO_RETRIEVAL = "Retrieval is not available yet."


def _ms(value: int | None) -> str:
    return "—" if value is None else f"{value} ms"


def _describe_index(status: Any) -> str:
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
    index_text: str = ""
    current_label: str = "none"
    candidate_label: str = ""
    candidate_percent: int = 0
    previous_label: str = ""
    choices: list[dict[str, str]] = []
    chosen: str = ""
    split_percent: int = 10
    stats: list[dict[str, str]] = []
    chart: list[dict[str, Any]] = []
    rated: list[dict[str, str]] = []

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
        self._refresh_index()
        self._refresh_rollout()
        return None

    def _refresh_index(self) -> None:
        try:
            from gptstudio.services import retrieval
        except ImportError:
            self.index_text = NO_RETRIEVAL
            return
        status = retrieval.index_status(actor=self._actor(), assistant_id=self.assistant_id)
        self.index_text = _describe_index(status)

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
                "p50": _ms(s.latency_p50_ms),
                "p95": _ms(s.latency_p95_ms),
            }
            for s in stats
        ]
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
    def save_profile(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            saved = assistant_settings.update_profile(
                actor=self._actor(),
                assistant_id=self.assistant_id,
                name=str(form.get("name", "")),
                description=str(form.get("description", "")),
                system_prompt=str(form.get("system_prompt", "")),
                client=self._client(),
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self.name, self.description, self.system_prompt = (
            saved.name,
            saved.description,
            saved.system_prompt,
        )
        self.assistant_name = saved.name
        return rx.toast.success("Saved: new conversations use the new persona.")

    @rx.event
    def set_name(self, value: str) -> None:
        self.name = value

    @rx.event
    def set_description(self, value: str) -> None:
        self.description = value

    @rx.event
    def set_system_prompt(self, value: str) -> None:
        self.system_prompt = value

    @rx.event
    def set_rag_enabled(self, value: bool) -> None:
        self.rag_enabled = value

    @rx.event
    def set_top_k_text(self, value: str) -> None:
        self.top_k_text = value

    @rx.event
    def save_retrieval(self, form: dict[str, Any]) -> Any:
        self.error = ""
        try:
            top_k = int(self.top_k_text.strip())
        except ValueError:
            self.error = "Passages per answer must be a whole number from 1 to 20."
            return None
        try:
            saved = assistant_settings.update_retrieval(
                actor=self._actor(),
                assistant_id=self.assistant_id,
                enabled=self.rag_enabled,
                top_k=top_k,
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self.rag_enabled, self.top_k_text = saved.rag_enabled, str(saved.rag_top_k)
        return rx.toast.success("Retrieval settings saved.")

    @rx.event
    def rebuild_index(self) -> Any:
        self.error = ""
        try:
            from gptstudio.services import retrieval
        except ImportError:
            self.index_text = NO_RETRIEVAL
            return None
        try:
            status = retrieval.request_build(actor=self._actor(), assistant_id=self.assistant_id)
        except DomainError as error:
            self.error = str(error)
            return None
        self.index_text = _describe_index(status)
        return rx.toast.info("Rebuilding the sources index.")

    @rx.event
    def refresh(self) -> None:
        self._refresh_index()
        self._refresh_rollout()

    @rx.event
    def choose(self, value: str) -> None:
        self.chosen = value

    @rx.event
    def set_split_percent(self, value: list[int | float]) -> None:
        self.split_percent = int(value[0]) if value else 0

    @rx.event
    def start_split(self, form: dict[str, Any]) -> Any:
        self.error = ""
        if not self.chosen:
            self.error = "Choose a candidate version first."
            return None
        try:
            rollout.set_split(
                actor=self._actor(),
                assistant_id=self.assistant_id,
                candidate_version_id=int(self.chosen),
                percent=self.split_percent,
                override_reason=str(form.get("reason", "")),
                client=self._client(),
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh_rollout()
        return rx.toast.success(
            f"{self.candidate_label} now gets {self.candidate_percent} % of new conversations."
        )

    @rx.event
    def promote(self) -> Any:
        self.error = ""
        try:
            rollout.promote(
                actor=self._actor(), assistant_id=self.assistant_id, client=self._client()
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh_rollout()
        return rx.toast.success(f"{self.current_label} now answers every new conversation.")

    @rx.event
    def roll_back(self) -> Any:
        self.error = ""
        try:
            rollout.rollback(
                actor=self._actor(), assistant_id=self.assistant_id, client=self._client()
            )
        except DomainError as error:
            self.error = str(error)
            return None
        self._refresh_rollout()
        return rx.toast.success(f"Rolled back: {self.current_label} answers new conversations.")


def _profile_card() -> rx.Component:
    return rx.card(
        rx.heading("Profile and persona", size="4"),
        rx.form(
            rx.vstack(
                rx.text("Name", size="2"),
                rx.input(
                    name="name",
                    value=SettingsState.name,
                    on_change=SettingsState.set_name,
                    max_length=120,
                    width="100%",
                    id="settings-name",
                ),
                rx.text("Description", size="2"),
                rx.text_area(
                    name="description",
                    value=SettingsState.description,
                    on_change=SettingsState.set_description,
                    max_length=2000,
                    width="100%",
                    rows="3",
                    id="settings-description",
                ),
                rx.text("Persona (system prompt)", size="2"),
                rx.text(
                    "Sent first in every conversation: who the assistant is, its tone, what it "
                    "must not do.",
                    size="1",
                    color_scheme="gray",
                ),
                rx.text_area(
                    name="system_prompt",
                    value=SettingsState.system_prompt,
                    on_change=SettingsState.set_system_prompt,
                    max_length=8000,
                    width="100%",
                    rows="6",
                    id="settings-persona",
                ),
                submit_button("Save", id="settings-save"),
                width="100%",
            ),
            on_submit=SettingsState.save_profile,
            width="100%",
        ),
        width="100%",
    )


def _retrieval_card() -> rx.Component:
    return rx.card(
        rx.heading("Retrieval and citations", size="4"),
        rx.form(
            rx.flex(
                rx.hstack(
                    rx.switch(
                        checked=SettingsState.rag_enabled,
                        on_change=SettingsState.set_rag_enabled,
                        name="rag_enabled",
                        id="rag-enabled",
                    ),
                    rx.text("Search my documents and cite them in answers", size="2"),
                    align="center",
                ),
                rx.hstack(
                    rx.text("Passages per answer", size="2"),
                    rx.input(
                        name="top_k",
                        type="number",
                        min=1,
                        max=20,
                        value=SettingsState.top_k_text,
                        on_change=SettingsState.set_top_k_text,
                        width="5em",
                        id="rag-top-k",
                    ),
                    align="center",
                ),
                rx.button("Save", type="submit", size="2", variant="soft", id="rag-save"),
                gap="4",
                wrap="wrap",
                align="center",
            ),
            on_submit=SettingsState.save_retrieval,
        ),
        rx.hstack(
            rx.text("Sources index: ", SettingsState.index_text, size="2", id="index-status"),
            rx.spacer(),
            rx.button(
                "Rebuild index",
                size="1",
                variant="soft",
                on_click=SettingsState.rebuild_index,
                id="rebuild-index",
            ),
            rx.button("Refresh", size="1", variant="ghost", on_click=SettingsState.refresh),
            width="100%",
            align="center",
            margin_top="0.5em",
            wrap="wrap",
        ),
        width="100%",
    )


def _stats_table() -> rx.Component:
    headers = ("Version", "Role", "Status", "Conversations", "Answers", "👍", "👎", "p50", "p95")
    keys = ("version", "role", "status", "conversations", "answers", "up", "down", "p50", "p95")
    return rx.box(
        rx.table.root(
            table_header(*headers),
            rx.table.body(
                rx.foreach(
                    SettingsState.stats,
                    lambda s: rx.table.row(
                        *[rx.table.cell(s[k]) for k in keys], class_name="stats-row"
                    ),
                )
            ),
            width="100%",
            size="1",
        ),
        overflow_x="auto",
        width="100%",
    )


def _charts() -> rx.Component:
    return rx.grid(
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="up", fill="#30a46c", name="thumbs up"),
            rx.recharts.bar(data_key="down", fill="#e5484d", name="thumbs down"),
            rx.recharts.x_axis(data_key="version"),
            rx.recharts.y_axis(allow_decimals=False),
            rx.recharts.legend(),
            rx.recharts.graphing_tooltip(),
            data=SettingsState.chart,
            width="100%",
            height=200,
            id="feedback-chart",
        ),
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="p50", fill="#3e63dd", name="p50 ms"),
            rx.recharts.bar(data_key="p95", fill="#8e4ec6", name="p95 ms"),
            rx.recharts.x_axis(data_key="version"),
            rx.recharts.y_axis(),
            rx.recharts.legend(),
            rx.recharts.graphing_tooltip(),
            data=SettingsState.chart,
            width="100%",
            height=200,
            id="latency-chart",
        ),
        columns=rx.breakpoints(initial="1", md="2"),
        spacing="4",
        width="100%",
    )


def _rollout_card() -> rx.Component:
    return rx.card(
        rx.heading("Versions and rollout", size="4"),
        rx.flex(
            rx.text("Current: ", rx.badge(SettingsState.current_label, id="current-version")),
            rx.cond(
                SettingsState.splitting,
                rx.text(
                    "Candidate: ",
                    rx.badge(SettingsState.candidate_label, color_scheme="orange"),
                    " gets ",
                    SettingsState.candidate_percent.to_string(),
                    " % of new conversations",
                    id="split-status",
                ),
                rx.text("No split running.", color_scheme="gray", id="split-status"),
            ),
            rx.cond(
                SettingsState.previous_label != "",
                rx.text("Previous: ", rx.badge(SettingsState.previous_label, variant="soft")),
            ),
            gap="4",
            wrap="wrap",
            align="center",
        ),
        rx.form(
            rx.flex(
                rx.select.root(
                    rx.select.trigger(placeholder="candidate version", id="split-version"),
                    rx.select.content(
                        rx.foreach(
                            SettingsState.choices,
                            lambda c: rx.select.item(c["label"], value=c["id"]),
                        )
                    ),
                    value=SettingsState.chosen,
                    on_change=SettingsState.choose,
                ),
                rx.hstack(
                    rx.slider(
                        default_value=[SettingsState.split_percent],
                        on_value_commit=SettingsState.set_split_percent,
                        min=0,
                        max=100,
                        step=5,
                        width="10em",
                        name="percent",
                        id="split-slider",
                    ),
                    rx.text(
                        SettingsState.split_percent.to_string(), " %", size="2", id="split-percent"
                    ),
                    align="center",
                ),
                rx.input(
                    name="reason",
                    placeholder="Reason, if it did not pass the gate",
                    width="18em",
                    id="split-reason",
                ),
                submit_button("Start split", id="split-start"),
                gap="3",
                wrap="wrap",
                align="center",
            ),
            on_submit=SettingsState.start_split,
            margin_y="0.75em",
        ),
        rx.hstack(
            rx.button(
                "Promote candidate",
                on_click=SettingsState.promote,
                disabled=SettingsState.candidate_label == "",
                id="promote",
            ),
            rx.button(
                "Roll back",
                on_click=SettingsState.roll_back,
                color_scheme="red",
                variant="soft",
                disabled=~SettingsState.splitting & (SettingsState.previous_label == ""),
                id="rollback",
            ),
            spacing="3",
        ),
        rx.heading("Per version", size="3", margin_top="1em"),
        _stats_table(),
        rx.cond(SettingsState.chart.length() > 0, _charts()),
        width="100%",
    )


def _feedback_card() -> rx.Component:
    return rx.card(
        rx.heading("Recent feedback", size="4"),
        rx.cond(
            SettingsState.rated.length() == 0,
            rx.text("No rated answers yet.", size="2", color_scheme="gray"),
        ),
        rx.foreach(
            SettingsState.rated,
            lambda r: rx.box(
                rx.hstack(
                    rx.badge(
                        rx.cond(r["value"] == "up", "👍", "👎"),
                        color_scheme=rx.cond(r["value"] == "up", "green", "red"),
                    ),
                    rx.badge(r["version"], variant="soft"),
                    rx.text(r["when"], size="1", color_scheme="gray"),
                    align="center",
                ),
                rx.text("Q: ", r["question"], size="2", weight="medium"),
                rx.text("A: ", r["answer"], size="2", color_scheme="gray", trim="both"),
                rx.cond(r["comment"] != "", rx.blockquote(r["comment"], size="2")),
                class_name="feedback-row",
                padding_y="0.5em",
                border_bottom="1px solid var(--gray-4)",
                width="100%",
            ),
        ),
        width="100%",
    )


@rx.page(route="/assistant/settings", title="Settings · GPT Studio", on_load=SettingsState.load)
def settings_page() -> rx.Component:
    return page(
        assistant_header(),
        form_error(SettingsState.error),
        _profile_card(),
        _retrieval_card(),
        _rollout_card(),
        _feedback_card(),
        max_width="1100px",
    )

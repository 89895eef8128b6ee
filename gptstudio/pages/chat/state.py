"""The chat page's state: the assistant, the open conversation and its messages as shown, and
the answer streamed into it (send, regenerate, stop). Conversation management and feedback are
substates beside their components (:mod:`.conversations`, :mod:`.feedback`)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from engine.protocol import Finish, TextDelta
from gptstudio.errors import DomainError, PaymentRequired, RateLimited
from gptstudio.models import Message
from gptstudio.services import completion, conversation, quota
from gptstudio.state.auth import AuthState
from gptstudio.state.errors import shows_error


@dataclass
class Citation:
    n: int = 0
    label: str = ""
    text: str = ""
    url: str = ""


@dataclass
class Bubble:
    """One message as the page shows it; ``id`` is 0 while an answer is still streaming. An
    answer regenerated keeps the earlier ones: ``choice`` of ``choices`` is shown."""

    id: int = 0
    role: str = "user"
    content: str = ""
    citations: list[Citation] = field(default_factory=list)
    latency: str = ""
    feedback: int = 0
    comment: str = ""
    choice: int = 1
    choices: int = 1


def citation_of(raw: Any) -> Citation | None:
    """A stored or streamed citation (``{n, filename, page, section, snippet|text, …}``)."""
    if not isinstance(raw, dict):
        return None
    filename = str(raw.get("filename") or "source")
    page_number = raw.get("page")
    if page_number not in (None, ""):
        label = f"{filename}, p. {page_number}"
    elif raw.get("section"):
        label = f"{filename}, {raw['section']}"
    else:
        label = filename
    return Citation(
        n=int(raw.get("n") or 0),
        label=label,
        text=str(raw.get("snippet") or raw.get("text") or ""),
        url=str(raw.get("url") or raw.get("source_url") or ""),
    )


def latency_text(latency_ms: int | None) -> str:
    if latency_ms is None:
        return ""
    return f"{latency_ms} ms" if latency_ms < 1000 else f"{latency_ms / 1000:.1f} s"


def bubble_of(message: Message, *, choice: int = 1, choices: int = 1) -> Bubble:
    citations = [c for c in (citation_of(raw) for raw in message.citations or []) if c]
    role = "assistant" if message.role == conversation.ALTERNATIVE_ROLE else message.role
    return Bubble(
        id=message.id or 0, role=role, content=message.content, citations=citations,
        latency=latency_text(message.latency_ms), feedback=message.feedback,
        comment=message.feedback_comment, choice=choice, choices=choices,
    )  # fmt: skip


def bubbles_of(rows: list[Message]) -> list[Bubble]:
    """The thread as shown: each question's answers as one bubble (the chosen one, or the last
    kept when none is chosen), with the number of answers to switch between."""
    shown: list[Bubble] = []
    for group_or_row in _grouped(rows):
        if isinstance(group_or_row, Message):
            shown.append(bubble_of(group_or_row))
            continue
        group = group_or_row
        chosen = next((m for m in group if m.role == "assistant"), group[-1])
        shown.append(bubble_of(chosen, choice=group.index(chosen) + 1, choices=len(group)))
    return shown


def _grouped(rows: list[Message]) -> list[Message | list[Message]]:
    groups = {id(m): g for g in conversation.answer_groups(rows) for m in g}
    out: list[Message | list[Message]] = []
    for row in rows:
        group = groups.get(id(row))
        if group is None:
            out.append(row)
        elif row is group[0]:
            out.append(group)
    return out


class ChatState(AuthState):
    """The page's shared state; :mod:`.conversations` and :mod:`.feedback` are its substates."""

    slug: str = ""
    assistant_name: str = ""
    welcome_message: str = ""
    starters: list[str] = []
    editing_id: int = 0
    edit_text: str = ""
    conversations: list[dict[str, str]] = []
    search: str = ""
    conversation_id: int = 0
    messages: list[Bubble] = []
    streaming: bool = False
    error: str = ""
    # Filled by the quota service (plan limits): a line above the input and an upgrade link.
    quota_text: str = ""
    sources_note: str = ""  # why the last answer has no sources (retrieval on, none found)
    upgrade_url: str = ""
    assistant_id: int = 0
    _stop: bool = False

    def _refresh_quota(self) -> None:
        """The line above the input: tokens left this period and when they renew, or why the
        plan does not allow chatting; an upgrade link when the plan is limited or used up."""
        state = quota.status(user_id=self._actor().id, assistant_id=self.assistant_id)
        self.quota_text, self.upgrade_url = quota_line(state), ""
        if not state.allowed or state.limit is not None:
            self.upgrade_url = state.upgrade_url

    @rx.event
    def load(self) -> Any:
        refused = self._guard()
        if refused is not None:
            return refused
        self.slug = self.router.url.query_parameters.get("assistant", "")
        try:
            model = completion.served(slug=self.slug)
        except DomainError as error:
            return self._send_home(str(error), "/home")
        self.assistant_name, self.error = model.name or model.slug, ""
        self.welcome_message, self.starters = (
            model.welcome_message,
            list(model.conversation_starters),
        )
        self.assistant_id = model.assistant_id
        self._refresh_quota()
        self._reload_list()
        # A reload keeps this tab's state: show the open conversation as stored now, unless an
        # answer is still streaming into it (the streaming task owns the messages until done).
        known = {c["id"] for c in self.conversations}
        if self.streaming:
            pass
        elif str(self.conversation_id) in known:
            self._open(self.conversation_id)
        elif self.conversations:
            self._open(int(self.conversations[0]["id"]))
        else:
            self.conversation_id, self.messages = 0, []
        return None

    def _reload_list(self) -> None:
        rows = conversation.list_conversations(
            actor=self._actor(), slug=self.slug, search=self.search
        )
        self.conversations = [
            {"id": str(c.id), "title": c.title, "updated": f"{c.updated_at:%Y-%m-%d %H:%M}"}
            for c in rows
        ]

    def _open(self, conversation_id: int) -> None:
        rows = conversation.messages_of(actor=self._actor(), conversation_id=conversation_id)
        self.conversation_id = conversation_id
        self.messages = bubbles_of(rows)

    @rx.event
    def stop(self) -> None:
        self._stop = True

    @rx.event(background=True)
    async def send(self, form: dict[str, Any]) -> Any:
        return await self._ask(str(form.get("message", "")))

    @rx.event(background=True)
    async def ask_starter(self, text: str) -> Any:
        """A conversation starter, sent as if typed."""
        return await self._ask(str(text))

    async def _ask(self, text: str) -> Any:
        text = text.strip()
        async with self:
            if self.streaming or not text:
                return None
            if not self.conversation_id:
                self.conversation_id = (
                    conversation.start_conversation(actor=self._actor(), slug=self.slug).id or 0
                )
            question = conversation.add_message(
                actor=self._actor(), conversation_id=self.conversation_id, role="user", content=text
            )
            self.messages = [*self.messages, bubble_of(question)]
        return await self._answer()

    @rx.event(background=True)
    async def regenerate(self) -> Any:
        """Ask for another answer to the last question (the earlier one is kept), or again after
        a failed answer (Retry)."""
        async with self:
            if self.streaming or not self.messages:
                return None
            conversation.set_aside_last_answer(
                actor=self._actor(), conversation_id=self.conversation_id
            )
            self._open(self.conversation_id)
            if self.messages and self.messages[-1].role == "assistant":
                # The earlier answers stay (switchable); the new one streams below the question.
                self.messages = self.messages[:-1]
            if not conversation.history_of(self.messages):
                return None
        return await self._answer()

    @rx.event
    @shows_error
    def switch_answer(self, message_id: int, step: int) -> None:
        """Show (and go on from) the previous or next answer to the same question."""
        if self.streaming:
            return
        rows = conversation.messages_of(actor=self._actor(), conversation_id=self.conversation_id)
        group = next(
            (g for g in conversation.answer_groups(rows) if message_id in {m.id for m in g}), []
        )
        ids = [m.id or 0 for m in group]
        if message_id not in ids:
            return
        target = ids[(ids.index(message_id) + int(step)) % len(ids)]
        conversation.choose_answer(
            actor=self._actor(), conversation_id=self.conversation_id, message_id=target
        )
        self._open(self.conversation_id)

    @rx.event
    def start_edit(self, message_id: int, text: str) -> None:
        if not self.streaming:
            self.editing_id, self.edit_text = int(message_id), str(text)

    @rx.event
    def set_edit_text(self, value: str) -> None:
        self.edit_text = value

    @rx.event
    def cancel_edit(self) -> None:
        self.editing_id, self.edit_text = 0, ""

    @rx.event(background=True)
    async def resend_edit(self) -> Any:
        """The edited question replaces the old one; what followed it goes; a new answer."""
        async with self:
            if self.streaming or not self.editing_id:
                return None
            try:
                conversation.edit_question(
                    actor=self._actor(), conversation_id=self.conversation_id,
                    message_id=self.editing_id, content=self.edit_text,
                )  # fmt: skip
            except DomainError as error:
                self.error = str(error)
                return None
            self.editing_id, self.edit_text = 0, ""
            self._open(self.conversation_id)
        return await self._answer()

    def _streaming_into(self, conversation_id: int) -> bool:
        """Whether the last bubble is still the placeholder of the answer being streamed."""
        last = self.messages[-1] if self.messages else None
        return (
            self.conversation_id == conversation_id
            and last is not None
            and last.role == "assistant"
            and last.id == 0
        )

    async def _answer(self) -> Any:
        async with self:
            actor = self._actor()
            stored = conversation.messages_of(actor=actor, conversation_id=self.conversation_id)
            history = conversation.history_of(stored)
            self.streaming, self._stop, self.error = True, False, ""
            self.messages = [*self.messages, Bubble(role="assistant")]
            conversation_id = self.conversation_id
        answer, usage, failure = "", dict[str, int](), ""
        context = completion.RequestContext()
        version_id: int | None = None
        started = time.monotonic()
        try:
            model = conversation.served_for_conversation(
                actor=actor, conversation_id=conversation_id
            )
            version_id = model.version_id
            events = completion.stream_completion(
                model=model, messages=history, params=completion.Params(), user_id=actor.id,
                source="ui", context=context,
            )  # fmt: skip
            async with contextlib.aclosing(events):  # a stop is metered at once
                async for event in events:
                    if isinstance(event, TextDelta):
                        answer += event.text
                    elif isinstance(event, Finish) and event.usage is not None:
                        usage = event.usage.to_dict()
                    async with self:
                        if self._streaming_into(conversation_id):
                            self.messages[-1] = Bubble(role="assistant", content=answer)
                        if self._stop:
                            break
        except (PaymentRequired, RateLimited) as refused:
            async with self:
                self.error, self.upgrade_url = str(refused), refused.upgrade_url
                failure = str(refused)
        except DomainError as error:
            failure = str(error)
        finally:
            latency_ms = int((time.monotonic() - started) * 1000)
            async with self:
                self.streaming = False
                self.sources_note = context.sources.warning if answer else ""
                if answer:
                    conversation.add_message(
                        actor=actor, conversation_id=conversation_id, role="assistant",
                        content=answer, usage=usage, citations=context.citations(answer),
                        latency_ms=latency_ms, model_version_id=version_id,
                    )  # fmt: skip
                elif not self._stop:
                    # Stored where the answer would be, so that a reload shows it, with Retry.
                    conversation.record_failure(
                        actor=actor, conversation_id=conversation_id,
                        reason=failure or "No answer this time. Try again, or rephrase.",
                    )  # fmt: skip
                if self._streaming_into(conversation_id):
                    self._open(conversation_id)
                self._reload_list()
                with contextlib.suppress(DomainError):
                    refused_link = self.upgrade_url if self.error else ""
                    self._refresh_quota()
                    self.upgrade_url = refused_link or self.upgrade_url
        return None


def quota_line(state: quota.QuotaStatus) -> str:
    """``"Free: 1,200 of 5,000 tokens left, renews on 1 Dec"``, or why chatting is refused."""
    if not state.allowed:
        return state.reason
    if state.limit is None:
        return ""
    renews = f", renews on {state.reset_at:%-d %b %Y}" if state.reset_at else ""
    return f"{state.plan_name}: {state.remaining:,} of {state.limit:,} tokens left{renews}"

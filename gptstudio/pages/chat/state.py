"""Chat with a published assistant: conversations (search, rename, delete, export, new, reset
context), answers streamed token by token with stop and regenerate, rendered as Markdown (code
highlighting, tables) with numbered citations, copy buttons, thumbs up/down with a comment, and
the answer time. On narrow screens the conversation list moves into a drawer."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.errors import DomainError, PaymentRequired, RateLimited
from gptstudio.models import Message
from gptstudio.services import chat, feedback, quota
from gptstudio.state.auth import AuthState

HISTORY_MESSAGES = 20  # the engine trims further to its context window
# A stored marker: messages before it are no longer sent to the model ("Reset context").
CONTEXT_RESET_ROLE = "context-reset"
CONTEXT_RESET_TEXT = "Context reset: the assistant no longer sees the messages above."


@dataclass
class Citation:
    n: int = 0
    label: str = ""
    text: str = ""
    url: str = ""


@dataclass
class Bubble:
    """One message as the page shows it; ``id`` is 0 while an answer is still streaming."""

    id: int = 0
    role: str = "user"
    content: str = ""
    citations: list[Citation] = field(default_factory=list)
    latency: str = ""
    feedback: int = 0
    comment: str = ""


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


def bubble_of(message: Message) -> Bubble:
    citations = [c for c in (citation_of(raw) for raw in message.citations or []) if c]
    return Bubble(
        id=message.id or 0, role=message.role, content=message.content, citations=citations,
        latency=latency_text(message.latency_ms), feedback=message.feedback,
        comment=message.feedback_comment,
    )  # fmt: skip


def history_of(bubbles: list[Bubble]) -> list[dict[str, str]]:
    """What the model sees: the turns after the last context reset, newest last."""
    start = 0
    for index, bubble in enumerate(bubbles):
        if bubble.role == CONTEXT_RESET_ROLE:
            start = index + 1
    turns = [
        {"role": b.role, "content": b.content}
        for b in bubbles[start:]
        if b.role in ("user", "assistant") and b.content.strip()
    ]
    return turns[-HISTORY_MESSAGES:]


class ChatState(AuthState):
    slug: str = ""
    assistant_name: str = ""
    conversations: list[dict[str, str]] = []
    search: str = ""
    conversation_id: int = 0
    messages: list[Bubble] = []
    streaming: bool = False
    error: str = ""
    drawer_open: bool = False
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
            model = chat.served(slug=self.slug)
        except DomainError as error:
            return [rx.toast.error(str(error)), rx.redirect("/home")]
        self.assistant_name, self.error = model.slug.replace("-", " ").title(), ""
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
        rows = chat.list_conversations(actor=self._actor(), slug=self.slug, search=self.search)
        self.conversations = [
            {"id": str(c.id), "title": c.title, "updated": f"{c.updated_at:%Y-%m-%d %H:%M}"}
            for c in rows
        ]

    def _open(self, conversation_id: int) -> None:
        rows = chat.messages_of(actor=self._actor(), conversation_id=conversation_id)
        self.conversation_id = conversation_id
        self.messages = [bubble_of(m) for m in rows]

    @rx.event
    def open_conversation(self, conversation_id: str) -> Any:
        if self.streaming:
            return rx.toast.info("Wait for the answer to finish (or stop it) first.")
        self._open(int(conversation_id))
        self.drawer_open = False
        return None

    @rx.event
    def new_conversation(self) -> None:
        if self.streaming:
            return
        conversation = chat.start_conversation(actor=self._actor(), slug=self.slug)
        self._open(conversation.id or 0)
        self._reload_list()
        self.drawer_open = False

    @rx.event
    def reset_context(self) -> Any:
        """Keep the conversation on screen, but start the model's context afresh."""
        if self.streaming or not self.conversation_id or not self.messages:
            return None
        if self.messages[-1].role == CONTEXT_RESET_ROLE:
            return None
        marker = chat.add_message(
            actor=self._actor(), conversation_id=self.conversation_id,
            role=CONTEXT_RESET_ROLE, content=CONTEXT_RESET_TEXT,
        )  # fmt: skip
        self.messages = [*self.messages, bubble_of(marker)]
        return rx.toast.info("Context reset: earlier messages are no longer sent.")

    @rx.event
    def set_search(self, value: str) -> None:
        self.search = value
        self._reload_list()

    @rx.event
    def set_drawer_open(self, value: bool) -> None:
        self.drawer_open = value

    @rx.event
    def rename(self, form: dict[str, Any]) -> None:
        chat.rename_conversation(
            actor=self._actor(),
            conversation_id=self.conversation_id,
            title=str(form.get("title", "")),
        )
        self._reload_list()

    @rx.event
    def delete(self) -> None:
        chat.delete_conversation(actor=self._actor(), conversation_id=self.conversation_id)
        self.conversation_id, self.messages = 0, []
        self._reload_list()

    @rx.event
    def export(self, fmt: str) -> Any:
        text = chat.export_conversation(
            actor=self._actor(), conversation_id=self.conversation_id, fmt=fmt
        )
        suffix = "md" if fmt == "markdown" else "json"
        return rx.download(data=text, filename=f"conversation-{self.conversation_id}.{suffix}")

    def _rated(self, message_id: int, value: int, comment: str) -> None:
        saved = feedback.set_feedback(
            actor=self._actor(), message_id=message_id, value=value, comment=comment
        )
        self.messages = [
            Bubble(**{**b.__dict__, "feedback": saved.feedback, "comment": saved.feedback_comment})
            if b.id == message_id
            else b
            for b in self.messages
        ]

    @rx.event
    def rate(self, message_id: int, value: int) -> Any:
        """Thumbs up or down; the same thumb again takes the rating back."""
        current = next((b for b in self.messages if b.id == message_id), None)
        if current is None:
            return rx.toast.error("Wait for the answer to finish before rating it.")
        chosen = 0 if current.feedback == value else value
        self._rated(message_id, chosen, current.comment)
        return None

    @rx.event
    def comment(self, form: dict[str, Any]) -> Any:
        try:
            message_id = int(str(form.get("message_id", "0")))
        except ValueError:
            message_id = 0
        current = next((b for b in self.messages if b.id == message_id), None)
        if current is None or current.feedback == 0:
            return rx.toast.error("Choose thumbs up or down first, then add a comment.")
        self._rated(message_id, current.feedback, str(form.get("comment", "")))
        return rx.toast.success("Thanks: the creator sees your feedback.")

    @rx.event
    def stop(self) -> None:
        self._stop = True

    @rx.event(background=True)
    async def send(self, form: dict[str, Any]) -> Any:
        text = str(form.get("message", "")).strip()
        async with self:
            if self.streaming or not text:
                return None
            if not self.conversation_id:
                self.conversation_id = (
                    chat.start_conversation(actor=self._actor(), slug=self.slug).id or 0
                )
            question = chat.add_message(
                actor=self._actor(), conversation_id=self.conversation_id, role="user", content=text
            )
            self.messages = [*self.messages, bubble_of(question)]
        return await self._answer()

    @rx.event(background=True)
    async def regenerate(self) -> Any:
        async with self:
            if self.streaming or not self.messages:
                return None
            chat.delete_last_assistant_message(
                actor=self._actor(), conversation_id=self.conversation_id
            )
            if self.messages[-1].role == "assistant":
                self.messages = self.messages[:-1]
            if not history_of(self.messages):
                return None
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
            actor, history = self._actor(), history_of(self.messages)
            self.streaming, self._stop, self.error = True, False, ""
            self.messages = [*self.messages, Bubble(role="assistant")]
            conversation_id = self.conversation_id
        answer, usage = "", dict[str, int]()
        context = chat.RequestContext()
        version_id: int | None = None
        started = time.monotonic()
        try:
            model = chat.served_for_conversation(actor=actor, conversation_id=conversation_id)
            version_id = model.version_id
            chunks = chat.stream_completion(
                model=model, messages=history, params=chat.Params(), user_id=actor.id,
                source="ui", context=context,
            )  # fmt: skip
            async with contextlib.aclosing(chunks):  # a stop is metered at once
                async for chunk in chunks:
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices", []):
                        answer += choice.get("delta", {}).get("content") or ""
                    async with self:
                        if self._streaming_into(conversation_id):
                            self.messages[-1] = Bubble(role="assistant", content=answer)
                        if self._stop:
                            break
        except (PaymentRequired, RateLimited) as refused:
            async with self:
                self.error, self.upgrade_url = str(refused), refused.upgrade_url
        except DomainError as error:
            async with self:
                self.error = str(error)
        finally:
            latency_ms = int((time.monotonic() - started) * 1000)
            async with self:
                self.streaming = False
                self.sources_note = context.sources.warning if answer else ""
                if answer:
                    stored = chat.add_message(
                        actor=actor, conversation_id=conversation_id, role="assistant",
                        content=answer, usage=usage, citations=context.citations(answer),
                        latency_ms=latency_ms, model_version_id=version_id,
                    )  # fmt: skip
                    if self._streaming_into(conversation_id):
                        self.messages[-1] = bubble_of(stored)
                elif self._streaming_into(conversation_id):
                    self.messages = self.messages[:-1]
                    if not self.error and not self._stop:
                        self.error = "No answer this time. Try asking again or rephrasing."
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


def _citation(citation: rx.Var[Citation]) -> rx.Component:
    return rx.el.details(
        rx.el.summary(
            "[", citation.n.to_string(), "] ", citation.label, title=citation.text, cursor="pointer"
        ),
        rx.text(citation.text, size="1", color_scheme="gray", padding_left="1em"),
        rx.cond(
            citation.url != "",
            rx.link("Open the source", href=citation.url, is_external=True, size="1"),
        ),
        class_name="citation",
        font_size="0.8em",
    )


def _comment_form(message: rx.Var[Bubble]) -> rx.Component:
    """An optional comment on a rated answer, folded away until asked for."""
    return rx.el.details(
        rx.el.summary(
            rx.cond(message.comment != "", "Edit comment", "Add a comment"),
            cursor="pointer",
            font_size="0.8em",
            color="var(--gray-11)",
            class_name="feedback-comment",
        ),
        rx.form(
            rx.vstack(
                rx.el.input(type="hidden", name="message_id", value=message.id),
                rx.text_area(
                    name="comment",
                    default_value=message.comment,
                    placeholder="What was good or wrong?",
                    max_length=2000,
                    width="100%",
                    class_name="feedback-text",
                ),
                rx.button("Save comment", type="submit", size="1", class_name="feedback-save"),
                align="end",
                width="100%",
            ),
            on_submit=ChatState.comment,
            width="100%",
        ),
        width="100%",
    )


def _feedback_bar(message: rx.Var[Bubble]) -> rx.Component:
    return rx.hstack(
        rx.icon_button(
            rx.icon("thumbs-up", size=14),
            size="1",
            variant=rx.cond(message.feedback == 1, "solid", "ghost"),
            color_scheme="green",
            on_click=ChatState.rate(message.id, 1),
            class_name="thumbs-up",
            aria_label="Good answer",
        ),
        rx.icon_button(
            rx.icon("thumbs-down", size=14),
            size="1",
            variant=rx.cond(message.feedback == -1, "solid", "ghost"),
            color_scheme="red",
            on_click=ChatState.rate(message.id, -1),
            class_name="thumbs-down",
            aria_label="Bad answer",
        ),
        rx.cond(
            message.latency != "",
            rx.text(message.latency, size="1", color_scheme="gray", class_name="latency"),
        ),
        spacing="2",
        align="center",
    )


MARKDOWN_STYLE = {
    "& table": {"border_collapse": "collapse", "display": "block", "overflow_x": "auto"},
    "& th, & td": {"border": "1px solid var(--gray-6)", "padding": "0.25em 0.6em"},
    "& pre": {"max_width": "100%", "overflow_x": "auto"},
}


def _bubble(message: rx.Var[Bubble]) -> rx.Component:
    mine = message.role == "user"
    return rx.cond(
        message.role == CONTEXT_RESET_ROLE,
        rx.hstack(
            rx.separator(size="4"),
            rx.text("Context reset", size="1", color_scheme="gray", white_space="nowrap"),
            rx.separator(size="4"),
            width="100%",
            align="center",
            class_name="context-reset",
        ),
        rx.box(
            # Model output is untrusted: no raw HTML.
            rx.markdown(message.content, use_raw=False, style=MARKDOWN_STYLE),
            rx.cond(
                message.citations.length() > 0,
                rx.vstack(
                    rx.foreach(message.citations, _citation),
                    spacing="1",
                    class_name="citations",
                    margin_top="0.5em",
                ),
            ),
            rx.hstack(
                rx.icon_button(
                    rx.icon("copy", size=12),
                    size="1",
                    variant="ghost",
                    on_click=[
                        rx.set_clipboard(message.content),
                        rx.toast.success("Copied", duration=1500),
                    ],
                    class_name="copy-message",
                    aria_label="Copy",
                ),
                rx.cond((message.role == "assistant") & (message.id > 0), _feedback_bar(message)),
                spacing="3",
                align="center",
            ),
            rx.cond(
                (message.role == "assistant") & (message.feedback != 0), _comment_form(message)
            ),
            background=rx.cond(mine, "var(--accent-3)", "var(--gray-2)"),
            padding="0.6em 1em",
            border_radius="10px",
            align_self=rx.cond(mine, "flex-end", "flex-start"),
            max_width=["100%", "100%", "85%"],
            min_width="0",
            overflow_wrap="anywhere",
            class_name=rx.cond(mine, "message user-message", "message assistant-message"),
        ),
    )


def _conversation_list(*, ids: bool) -> rx.Component:
    """The conversation list; ``ids`` only once on the page (the drawer copy has none)."""
    return rx.vstack(
        rx.button(
            "New conversation",
            on_click=ChatState.new_conversation,
            width="100%",
            **({"id": "new-chat"} if ids else {}),
        ),
        rx.input(
            placeholder="Search",
            value=ChatState.search,
            on_change=ChatState.set_search,
            width="100%",
            **({"id": "chat-search"} if ids else {}),
        ),
        rx.foreach(
            ChatState.conversations,
            lambda c: rx.button(
                c["title"],
                variant=rx.cond(c["id"] == ChatState.conversation_id.to_string(), "solid", "soft"),
                on_click=ChatState.open_conversation(c["id"]),
                width="100%",
                class_name="conversation" if ids else "conversation-in-drawer",
                justify="start",
                overflow="hidden",
            ),
        ),
        width="100%",
    )


def _sidebar() -> rx.Component:
    return rx.box(
        _conversation_list(ids=True),
        display=["none", "none", "block"],
        width="16em",
        min_width="16em",
    )


def _drawer() -> rx.Component:
    """Narrow screens: the conversation list slides in from the left."""
    return rx.box(
        rx.drawer.root(
            rx.drawer.trigger(
                rx.button(rx.icon("menu", size=16), "Conversations", variant="soft", size="2")
            ),
            rx.drawer.overlay(z_index="5"),
            rx.drawer.portal(
                rx.drawer.content(
                    rx.vstack(
                        rx.drawer.close(rx.button("Close", variant="ghost", size="1")),
                        _conversation_list(ids=False),
                        padding="1em",
                        width="100%",
                    ),
                    background="var(--color-panel-solid)",
                    height="100%",
                    width="80vw",
                    max_width="20em",
                    top="0",
                    left="0",
                    z_index="10",
                    overflow_y="auto",
                ),
            ),
            direction="left",
            open=ChatState.drawer_open,
            on_open_change=ChatState.set_drawer_open,
        ),
        display=["block", "block", "none"],
    )


def _toolbar() -> rx.Component:
    return rx.flex(
        rx.form(
            rx.hstack(
                rx.input(name="title", placeholder="Rename", size="1"),
                rx.button("Rename", size="1", variant="soft", type="submit"),
            ),
            on_submit=ChatState.rename,
            reset_on_submit=True,
        ),
        rx.spacer(),
        rx.button(
            "Reset context",
            size="1",
            variant="soft",
            on_click=ChatState.reset_context,
            disabled=ChatState.streaming,
            id="reset-context",
            title="Keep this conversation but let the assistant forget the messages so far",
        ),
        rx.button("Export .md", size="1", variant="soft", on_click=ChatState.export("markdown")),
        rx.button("Export .json", size="1", variant="soft", on_click=ChatState.export("json")),
        rx.button(
            "Delete", size="1", variant="soft", color_scheme="red", on_click=ChatState.delete
        ),
        width="100%",
        gap="2",
        wrap="wrap",
        align="center",
    )


def _quota_line() -> rx.Component:
    return rx.fragment(
        rx.cond(
            ChatState.sources_note != "",
            rx.text(ChatState.sources_note, size="1", color_scheme="amber", id="sources-note"),
        ),
        _quota_text(),
    )


def _quota_text() -> rx.Component:
    return rx.cond(
        ChatState.quota_text != "",
        rx.hstack(
            rx.text(ChatState.quota_text, size="1", color_scheme="gray", id="quota-text"),
            rx.cond(
                ChatState.upgrade_url != "",
                rx.link("Upgrade", href=ChatState.upgrade_url, size="1", id="upgrade-link"),
            ),
            spacing="2",
        ),
    )


def _thread() -> rx.Component:
    return rx.vstack(
        rx.cond(ChatState.conversation_id > 0, _toolbar()),
        form_error(ChatState.error),
        rx.vstack(
            rx.foreach(ChatState.messages, _bubble), width="100%", spacing="3", id="messages"
        ),
        _quota_line(),
        rx.form(
            rx.hstack(
                rx.text_area(
                    name="message",
                    placeholder="Ask something…",
                    width="100%",
                    id="chat-input",
                    rows="2",
                ),
                rx.cond(
                    ChatState.streaming,
                    rx.button(
                        "Stop",
                        type="button",
                        color_scheme="red",
                        on_click=ChatState.stop,
                        id="stop",
                    ),
                    submit_button("Send", id="send"),
                ),
                width="100%",
                align="end",
            ),
            on_submit=ChatState.send,
            reset_on_submit=True,
            width="100%",
        ),
        rx.cond(
            (ChatState.messages.length() > 0) & ~ChatState.streaming,
            rx.button(
                "Regenerate",
                size="1",
                variant="ghost",
                on_click=ChatState.regenerate,
                id="regenerate",
            ),
        ),
        width="100%",
        min_width="0",
    )


@rx.page(route="/chat", title="Chat · GPT Studio", on_load=ChatState.load)
def chat_page() -> rx.Component:
    return page(
        rx.hstack(
            _drawer(),
            rx.heading(ChatState.assistant_name, size="6"),
            rx.spacer(),
            rx.button(
                rx.icon("plus", size=14),
                "New",
                size="1",
                variant="soft",
                on_click=ChatState.new_conversation,
                display=["flex", "flex", "none"],
            ),
            width="100%",
            align="center",
        ),
        rx.flex(_sidebar(), _thread(), direction="row", spacing="4", width="100%"),
        max_width="1100px",
    )

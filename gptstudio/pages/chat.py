"""Chat with a published assistant: conversations (search, rename, delete, export), answers
streamed token by token with stop and regenerate, rendered as Markdown."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.services import chat
from gptstudio.services.errors import DomainError
from gptstudio.state.auth import AuthState

HISTORY_MESSAGES = 20  # the engine trims further to its context window


class ChatState(AuthState):
    slug: str = ""
    assistant_name: str = ""
    conversations: list[dict[str, str]] = []
    search: str = ""
    conversation_id: int = 0
    messages: list[dict[str, str]] = []
    streaming: bool = False
    error: str = ""
    _stop: bool = False

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
        self._reload_list()
        if self.conversations and not self.conversation_id:
            self._open(int(self.conversations[0]["id"]))
        return None

    def _reload_list(self) -> None:
        rows = chat.list_conversations(actor=self._actor(), slug=self.slug, search=self.search)
        self.conversations = [
            {"id": str(c.id), "title": c.title, "updated": f"{c.updated_at:%Y-%m-%d %H:%M}"}
            for c in rows
        ]

    def _open(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        self.messages = [
            {"role": m.role, "content": m.content}
            for m in chat.messages_of(actor=self._actor(), conversation_id=conversation_id)
        ]

    @rx.event
    def open_conversation(self, conversation_id: str) -> None:
        self._open(int(conversation_id))

    @rx.event
    def new_conversation(self) -> None:
        conversation = chat.start_conversation(actor=self._actor(), slug=self.slug)
        self._open(conversation.id or 0)
        self._reload_list()

    @rx.event
    def set_search(self, value: str) -> None:
        self.search = value
        self._reload_list()

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
            chat.add_message(
                actor=self._actor(), conversation_id=self.conversation_id, role="user", content=text
            )
            self.messages = [*self.messages, {"role": "user", "content": text}]
        return await self._answer()

    @rx.event(background=True)
    async def regenerate(self) -> Any:
        async with self:
            if self.streaming or not self.messages:
                return None
            chat.delete_last_assistant_message(
                actor=self._actor(), conversation_id=self.conversation_id
            )
            if self.messages[-1]["role"] == "assistant":
                self.messages = self.messages[:-1]
        return await self._answer()

    async def _answer(self) -> Any:
        async with self:
            actor, history = self._actor(), list(self.messages[-HISTORY_MESSAGES:])
            self.streaming, self._stop, self.error = True, False, ""
            self.messages = [*self.messages, {"role": "assistant", "content": ""}]
            conversation_id = self.conversation_id
        answer, usage = "", dict[str, int]()
        try:
            model = chat.served(slug=self.slug)
            chunks = chat.stream_completion(
                model=model, messages=history, params=chat.Params(), user_id=actor.id, source="ui"
            )
            async for chunk in chunks:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    answer += choice.get("delta", {}).get("content") or ""
                async with self:
                    self.messages[-1] = {"role": "assistant", "content": answer}
                    if self._stop:
                        break
        except DomainError as error:
            async with self:
                self.error = str(error)
        finally:
            async with self:
                self.streaming = False
                if answer:
                    chat.add_message(
                        actor=actor,
                        conversation_id=conversation_id,
                        role="assistant",
                        content=answer,
                        usage=usage,
                    )
                else:
                    self.messages = self.messages[:-1]
                self._reload_list()
        return None


def _bubble(message: rx.Var[dict[str, str]]) -> rx.Component:
    mine = message["role"] == "user"
    return rx.box(
        rx.markdown(message["content"]),
        rx.button(
            rx.icon("copy", size=12),
            size="1",
            variant="ghost",
            on_click=rx.set_clipboard(message["content"]),
        ),
        background=rx.cond(mine, "var(--accent-3)", "var(--gray-2)"),
        padding="0.6em 1em",
        border_radius="10px",
        align_self=rx.cond(mine, "flex-end", "flex-start"),
        max_width="85%",
        class_name=rx.cond(mine, "message user-message", "message assistant-message"),
    )


def _sidebar() -> rx.Component:
    return rx.vstack(
        rx.button(
            "New conversation", on_click=ChatState.new_conversation, width="100%", id="new-chat"
        ),
        rx.input(
            placeholder="Search",
            value=ChatState.search,
            on_change=ChatState.set_search,
            width="100%",
            id="chat-search",
        ),
        rx.foreach(
            ChatState.conversations,
            lambda c: rx.button(
                c["title"],
                variant=rx.cond(c["id"] == ChatState.conversation_id.to_string(), "solid", "soft"),
                on_click=ChatState.open_conversation(c["id"]),
                width="100%",
                class_name="conversation",
                justify="start",
                overflow="hidden",
            ),
        ),
        width=["100%", "100%", "16em"],
        min_width=["auto", "auto", "16em"],
    )


def _thread() -> rx.Component:
    return rx.vstack(
        rx.cond(
            ChatState.conversation_id > 0,
            rx.hstack(
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
                    "Export .md", size="1", variant="soft", on_click=ChatState.export("markdown")
                ),
                rx.button(
                    "Export .json", size="1", variant="soft", on_click=ChatState.export("json")
                ),
                rx.button(
                    "Delete",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=ChatState.delete,
                ),
                width="100%",
            ),
        ),
        form_error(ChatState.error),
        rx.vstack(
            rx.foreach(ChatState.messages, _bubble), width="100%", spacing="3", id="messages"
        ),
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
    )


@rx.page(route="/chat", title="Chat · GPT Studio", on_load=ChatState.load)
def chat_page() -> rx.Component:
    return page(
        rx.heading(ChatState.assistant_name, size="6"),
        rx.flex(
            _sidebar(),
            _thread(),
            direction=rx.breakpoints(initial="column", md="row"),
            spacing="4",
            width="100%",
        ),
        max_width="1100px",
    )

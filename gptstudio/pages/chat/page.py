"""The chat page at ``/chat?assistant=<slug>``: the conversation list beside the thread (the
creator's welcome and conversation starters in a new chat, the messages, the quota line, the
input with send and stop, regenerate)."""

from __future__ import annotations

import reflex as rx

from gptstudio.components.layout import form_error, page, submit_button
from gptstudio.pages.chat.conversations import (
    ConversationsState,
    actions_menu,
    drawer,
    sidebar,
    toolbar,
)
from gptstudio.pages.chat.messages import bubble
from gptstudio.pages.chat.state import ChatState
from gptstudio.pages.registry import add_page


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


def _welcome() -> rx.Component:
    """A new chat: the creator's welcome message and conversation starters."""
    return rx.vstack(
        rx.cond(
            ChatState.welcome_message != "",
            rx.box(
                rx.markdown(ChatState.welcome_message, use_raw=False),
                background="var(--gray-2)",
                padding="0.6em 1em",
                border_radius="10px",
                id="welcome",
            ),
        ),
        rx.flex(
            rx.foreach(
                ChatState.starters,
                lambda text: rx.button(
                    text,
                    variant="outline",
                    size="2",
                    on_click=ChatState.ask_starter(text),
                    class_name="starter",
                    height="auto",
                    padding_y="0.4em",
                    white_space="normal",
                    text_align="left",
                ),
            ),
            gap="2",
            wrap="wrap",
        ),
        width="100%",
        spacing="3",
    )


def _thread() -> rx.Component:
    return rx.vstack(
        rx.cond(ChatState.conversation_id > 0, toolbar()),
        form_error(ChatState.error),
        rx.cond(ChatState.messages.length() == 0, _welcome()),
        rx.vstack(rx.foreach(ChatState.messages, bubble), width="100%", spacing="3", id="messages"),
        # On a phone the conversation fills the screen and the composer sits at its bottom.
        rx.spacer(),
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
                # Both stay in the page and only one shows: the Stop button is the same
                # element from the first token to the last, so it can be clicked at any time.
                rx.button(
                    "Stop",
                    type="button",
                    color_scheme="red",
                    on_click=ChatState.stop,
                    id="stop",
                    display=rx.cond(ChatState.streaming, "inline-flex", "none"),
                ),
                rx.box(
                    submit_button("Send", id="send"),
                    display=rx.cond(ChatState.streaming, "none", "block"),
                ),
                width="100%",
                align="end",
            ),
            on_submit=ChatState.send,
            reset_on_submit=True,
            width="100%",
            id="chat-composer",
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
        # The screen less the navigation bar and the title row (app.css keeps the composer
        # above the on-screen keyboard).
        min_height=["calc(100dvh - 8.5em)", "calc(100dvh - 8.5em)", "auto"],
    )


@add_page(route="/chat", title="Chat · GPT Studio", on_load=ChatState.load)
def chat_page() -> rx.Component:
    return page(
        rx.hstack(
            drawer(),
            # One line on a phone: a long name is cut with an ellipsis (its full text on hover).
            rx.heading(
                ChatState.assistant_name,
                size=rx.breakpoints(initial="5", sm="6"),
                white_space="nowrap",
                overflow="hidden",
                text_overflow="ellipsis",
                min_width="0",
                flex="1",
                title=ChatState.assistant_name,
            ),
            rx.button(
                rx.icon("plus", size=14),
                "New",
                size="2",
                variant="soft",
                on_click=ConversationsState.new_conversation,
                display=["flex", "flex", "none"],
                id="new-chat-narrow",
            ),
            rx.cond(ChatState.conversation_id > 0, actions_menu()),
            width="100%",
            align="center",
        ),
        rx.flex(sidebar(), _thread(), direction="row", spacing="4", width="100%"),
        max_width="1100px",
    )

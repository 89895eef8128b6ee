"""One message as a bubble: Markdown (model output is untrusted: no raw HTML; plain text while it
streams, so the Markdown and math renderers run once per answer, not per token), numbered
citations, a copy button, on questions an edit box, on answers the feedback bar and a switch
between regenerated answers; a failed answer as an error with Retry; a context reset as a
divider."""

from __future__ import annotations

import reflex as rx

from gptstudio.pages.chat.feedback import comment_form, feedback_bar
from gptstudio.pages.chat.state import Bubble, ChatState, Citation
from gptstudio.services import conversation


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


MARKDOWN_STYLE = {
    "& table": {"border_collapse": "collapse", "display": "block", "overflow_x": "auto"},
    "& th, & td": {"border": "1px solid var(--gray-6)", "padding": "0.25em 0.6em"},
    "& pre": {"max_width": "100%", "overflow_x": "auto"},
}


def _failed(message: rx.Var[Bubble], last: rx.Var[bool]) -> rx.Component:
    """Where the answer would be: why it failed, and Retry when it is the last message."""
    return rx.callout(
        rx.hstack(
            rx.text(message.content, size="2"),
            rx.cond(
                last & ~ChatState.streaming,
                rx.button(
                    "Retry", size="1", variant="soft", on_click=ChatState.regenerate, id="retry"
                ),
            ),
            align="center",
            justify="between",
            width="100%",
            wrap="wrap",
        ),
        icon="triangle_alert",
        color_scheme="red",
        width="100%",
        class_name="failed-answer",
    )


def _choices(message: rx.Var[Bubble]) -> rx.Component:
    """‹ 1 / 2 › between the answers to the same question (regenerate keeps them)."""
    return rx.cond(
        message.choices > 1,
        rx.hstack(
            rx.icon_button(
                rx.icon("chevron_left", size=12),
                size="1",
                variant="ghost",
                on_click=ChatState.switch_answer(message.id, -1),
                disabled=ChatState.streaming,
                aria_label="Previous answer",
                class_name="previous-answer",
            ),
            rx.text(
                message.choice.to_string(),
                " / ",
                message.choices.to_string(),
                size="1",
                class_name="answer-choice",
            ),
            rx.icon_button(
                rx.icon("chevron_right", size=12),
                size="1",
                variant="ghost",
                on_click=ChatState.switch_answer(message.id, 1),
                disabled=ChatState.streaming,
                aria_label="Next answer",
                class_name="next-answer",
            ),
            spacing="1",
            align="center",
        ),
    )


def _editor(message: rx.Var[Bubble]) -> rx.Component:
    return rx.vstack(
        rx.text_area(
            value=ChatState.edit_text,
            on_change=ChatState.set_edit_text,
            width="100%",
            rows="3",
            id="edit-input",
        ),
        rx.hstack(
            rx.button("Cancel", size="1", variant="soft", on_click=ChatState.cancel_edit),
            rx.button("Send", size="1", on_click=ChatState.resend_edit, id="edit-send"),
            justify="end",
            width="100%",
        ),
        width="100%",
    )


def _content(message: rx.Var[Bubble]) -> rx.Component:
    return rx.cond(
        message.id > 0,
        rx.cond(
            (message.content == "") & (message.role == "assistant"),
            # A finished answer without text (the model ended at once): said, not a blank box.
            rx.text(
                "The model ended this answer without any text; Regenerate may give one.",
                size="2",
                color_scheme="gray",
                font_style="italic",
                class_name="empty-answer",
            ),
            # Model output is untrusted: no raw HTML.
            rx.markdown(message.content, use_raw=False, style=MARKDOWN_STYLE),
        ),
        rx.text(message.content, white_space="pre-wrap", class_name="streaming"),
    )


def bubble(message: rx.Var[Bubble], index: rx.Var[int]) -> rx.Component:
    last = index == ChatState.messages.length() - 1
    return rx.cond(
        message.role == conversation.CONTEXT_RESET_ROLE,
        rx.hstack(
            rx.separator(size="4"),
            rx.text("Context reset", size="1", color_scheme="gray", white_space="nowrap"),
            rx.separator(size="4"),
            width="100%",
            align="center",
            class_name="context-reset",
        ),
        rx.cond(message.role == conversation.FAILED_ROLE, _failed(message, last), _bubble(message)),
    )


def _bubble(message: rx.Var[Bubble]) -> rx.Component:
    mine = message.role == "user"
    return rx.cond(
        mine & (ChatState.editing_id == message.id),
        rx.box(_editor(message), width="100%", class_name="message user-message editing"),
        rx.box(
            _content(message),
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
                rx.cond(
                    mine & (message.id > 0),
                    rx.icon_button(
                        rx.icon("pencil", size=12),
                        size="1",
                        variant="ghost",
                        on_click=ChatState.start_edit(message.id, message.content),
                        disabled=ChatState.streaming,
                        class_name="edit-message",
                        aria_label="Edit and resend",
                    ),
                ),
                rx.cond((message.role == "assistant") & (message.id > 0), _choices(message)),
                rx.cond((message.role == "assistant") & (message.id > 0), feedback_bar(message)),
                spacing="3",
                align="center",
                wrap="wrap",  # a phone's 44 px targets need a second row
            ),
            rx.cond((message.role == "assistant") & (message.feedback != 0), comment_form(message)),
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

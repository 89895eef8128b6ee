"""One message as a bubble: Markdown (model output is untrusted: no raw HTML), numbered
citations, a copy button and, on answers, the feedback bar; a context reset as a divider."""

from __future__ import annotations

import reflex as rx

from gptstudio.pages.chat.feedback import comment_form, feedback_bar
from gptstudio.pages.chat.state import Bubble, Citation
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


def bubble(message: rx.Var[Bubble]) -> rx.Component:
    mine = message.role == "user"
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
                rx.cond((message.role == "assistant") & (message.id > 0), feedback_bar(message)),
                spacing="3",
                align="center",
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

"""The conversation list (sidebar, and a drawer on narrow screens) and the toolbar of the open
conversation (rename, reset context, export, delete), with the substate their events run in."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.pages.chat.state import ChatState, bubble_of
from gptstudio.services import conversation


class ConversationsState(ChatState):
    """Opening, starting, searching and managing the user's conversations."""

    drawer_open: bool = False
    # The phone's actions menu opens these two dialogs (a menu closes as it is tapped, so it
    # cannot hold a dialog of its own).
    renaming: bool = False
    deleting: bool = False

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
        started = conversation.start_conversation(actor=self._actor(), slug=self.slug)
        self._open(started.id or 0)
        self._reload_list()
        self.drawer_open = False

    @rx.event
    def reset_context(self) -> Any:
        """Keep the conversation on screen, but start the model's context afresh."""
        if self.streaming or not self.conversation_id or not self.messages:
            return None
        marker = conversation.reset_context(
            actor=self._actor(), conversation_id=self.conversation_id
        )
        if marker is None:
            return None
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
    def set_renaming(self, value: bool) -> None:
        self.renaming = value

    @rx.event
    def set_deleting(self, value: bool) -> None:
        self.deleting = value

    @rx.event
    def rename(self, form: dict[str, Any]) -> None:
        conversation.rename_conversation(
            actor=self._actor(),
            conversation_id=self.conversation_id,
            title=str(form.get("title", "")),
        )
        self.renaming = False
        self._reload_list()

    @rx.event
    def delete(self) -> None:
        conversation.delete_conversation(actor=self._actor(), conversation_id=self.conversation_id)
        self.conversation_id, self.messages = 0, []
        self.deleting = False
        self._reload_list()

    @rx.event
    def export(self, fmt: str) -> Any:
        text = conversation.export_conversation(
            actor=self._actor(), conversation_id=self.conversation_id, fmt=fmt
        )
        suffix = "md" if fmt == "markdown" else "json"
        return rx.download(data=text, filename=f"conversation-{self.conversation_id}.{suffix}")


def _conversation_list(*, ids: bool) -> rx.Component:
    """The conversation list; ``ids`` only once on the page (the drawer copy has none)."""
    return rx.vstack(
        rx.button(
            "New conversation",
            on_click=ConversationsState.new_conversation,
            width="100%",
            **({"id": "new-chat"} if ids else {}),
        ),
        rx.input(
            placeholder="Search",
            value=ChatState.search,
            on_change=ConversationsState.set_search,
            width="100%",
            **({"id": "chat-search"} if ids else {}),
        ),
        rx.foreach(
            ChatState.conversations,
            lambda c: rx.button(
                c["title"],
                variant=rx.cond(c["id"] == ChatState.conversation_id.to_string(), "solid", "soft"),
                on_click=ConversationsState.open_conversation(c["id"]),
                width="100%",
                class_name="conversation" if ids else "conversation-in-drawer",
                justify="start",
                title=c["title"],
                # Long titles wrap onto more lines instead of being cut off.
                height="auto",
                min_height="var(--space-6)",
                padding_y="0.35em",
                white_space="normal",
                text_align="left",
                overflow_wrap="anywhere",
            ),
        ),
        width="100%",
    )


def sidebar() -> rx.Component:
    return rx.box(
        _conversation_list(ids=True),
        display=["none", "none", "block"],
        width="16em",
        min_width="16em",
    )


def drawer() -> rx.Component:
    """Narrow screens: the conversation list slides in from the left."""
    return rx.box(
        rx.drawer.root(
            rx.drawer.trigger(
                rx.icon_button(
                    rx.icon("panel-left", size=18),
                    variant="soft",
                    size="2",
                    aria_label="Conversations",
                    id="open-conversations",
                )
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
            open=ConversationsState.drawer_open,
            on_open_change=ConversationsState.set_drawer_open,
        ),
        display=["block", "block", "none"],
    )


def toolbar() -> rx.Component:
    """Wide screens: the open conversation's actions in a row above it."""
    return rx.flex(
        rx.form(
            rx.hstack(
                rx.input(name="title", placeholder="Rename", size="1"),
                rx.button("Rename", size="1", variant="soft", type="submit"),
            ),
            on_submit=ConversationsState.rename,
            reset_on_submit=True,
        ),
        rx.spacer(),
        rx.button(
            "Reset context",
            size="1",
            variant="soft",
            on_click=ConversationsState.reset_context,
            disabled=ChatState.streaming,
            id="reset-context",
            title="Keep this conversation but let the assistant forget the messages so far",
        ),
        rx.button(
            "Export .md", size="1", variant="soft", on_click=ConversationsState.export("markdown")
        ),
        rx.button(
            "Export .json", size="1", variant="soft", on_click=ConversationsState.export("json")
        ),
        _delete_button(),
        width="100%",
        gap="2",
        wrap="wrap",
        align="center",
        display=["none", "none", "flex"],
    )


def actions_menu() -> rx.Component:
    """Narrow screens: the same actions behind one button in the page's title row."""
    return rx.box(
        rx.menu.root(
            rx.menu.trigger(
                rx.icon_button(
                    rx.icon("ellipsis-vertical", size=18),
                    variant="soft",
                    size="2",
                    aria_label="Conversation actions",
                    id="chat-actions",
                )
            ),
            rx.menu.content(
                rx.menu.item("Rename…", on_click=ConversationsState.set_renaming(True)),
                rx.menu.item(
                    "Reset context",
                    on_click=ConversationsState.reset_context,
                    disabled=ChatState.streaming,
                ),
                rx.menu.item("Export .md", on_click=ConversationsState.export("markdown")),
                rx.menu.item("Export .json", on_click=ConversationsState.export("json")),
                rx.menu.separator(),
                rx.menu.item(
                    "Delete…",
                    color="red",
                    on_click=ConversationsState.set_deleting(True),
                    id="menu-delete-chat",
                ),
                align="end",
            ),
        ),
        _rename_dialog(),
        _delete_dialog(),
        display=["block", "block", "none"],
    )


def _rename_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Rename this conversation"),
            rx.form(
                rx.vstack(
                    rx.input(
                        name="title", placeholder="New title", width="100%", id="rename-title"
                    ),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", variant="soft", color_scheme="gray")),
                        rx.button("Rename", type="submit", id="rename-confirm"),
                        justify="end",
                        width="100%",
                    ),
                    width="100%",
                ),
                on_submit=ConversationsState.rename,
                reset_on_submit=True,
            ),
        ),
        open=ConversationsState.renaming,
        on_open_change=ConversationsState.set_renaming,
    )


def _delete_confirmation(confirm_id: str) -> rx.Component:
    """The confirmation that names what goes; ``confirm_id`` is its Delete button's id."""
    return rx.alert_dialog.content(
        rx.alert_dialog.title("Delete this conversation?"),
        rx.alert_dialog.description(
            "Its messages are deleted for good; this cannot be undone.", size="2"
        ),
        rx.flex(
            rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray")),
            rx.alert_dialog.action(
                rx.button(
                    "Delete", color_scheme="red", on_click=ConversationsState.delete, id=confirm_id
                )
            ),
            gap="3",
            justify="end",
            margin_top="1em",
        ),
    )


def _delete_dialog() -> rx.Component:
    """The actions menu's Delete (a phone): the same confirmation, opened by the menu item."""
    return rx.alert_dialog.root(
        _delete_confirmation("menu-delete-chat-confirm"),
        open=ConversationsState.deleting,
        on_open_change=ConversationsState.set_deleting,
    )


def _delete_button() -> rx.Component:
    """Delete, after a confirmation that names what goes."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button("Delete", size="1", variant="soft", color_scheme="red", id="delete-chat")
        ),
        _delete_confirmation("delete-chat-confirm"),
    )

"""Widget settings for one of the creator's assistants (``/assistant/widget?id=N``): turn the
embeddable chat widget on or off, list the sites allowed to embed it, choose its look (colour,
title, greeting, position, launcher) with a live preview, copy the ``<script>`` tag,
rotate the publishable key, and show or rotate the secret the creator's site signs its users'
identities with (with Python and Node snippets)."""

from __future__ import annotations

from typing import Any

import reflex as rx

from gptstudio.components.code import code_block, copyable_code, secret_callout
from gptstudio.components.layout import assistant_header, form_error, page, submit_button
from gptstudio.pages.registry import add_page
from gptstudio.services import widget
from gptstudio.settings import get_settings
from gptstudio.state.errors import shows_error
from gptstudio.state.owned_assistant import AssistantPageState

PYTHON_SNIPPET = """import hashlib, hmac, os, time

def gptstudio_identity(email: str, ttl: int = 600) -> str:
    \"\"\"The signed identity of a signed-in user of your site (their GPT Studio e-mail).\"\"\"
    secret = os.environ["GPTSTUDIO_WIDGET_SECRET"]  # ws_…
    payload = f"{email}.{int(time.time()) + ttl}"
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"
"""

NODE_SNIPPET = """const crypto = require("node:crypto");

// The signed identity of a signed-in user of your site (their GPT Studio e-mail).
function gptstudioIdentity(email, ttl = 600) {
  const secret = process.env.GPTSTUDIO_WIDGET_SECRET; // ws_…
  const payload = `${email}.${Math.floor(Date.now() / 1000) + ttl}`;
  const signature = crypto.createHmac("sha256", secret).update(payload).digest("hex");
  return `${payload}.${signature}`;
}
"""


class WidgetSettingsState(AssistantPageState):
    enabled: bool = False
    published: bool = False
    key: str = ""
    has_secret: bool = False
    origins: list[str] = []
    origins_text: str = ""
    secret: str = ""
    app_url: str = ""
    max_age: int = 3600
    # The look as edited (the preview follows each keystroke; Save stores it).
    color: str = widget.DEFAULT_COLOR
    title: str = ""
    greeting: str = ""
    position: str = "right"
    launcher: str = "icon"
    launcher_text: str = ""

    @rx.var
    def preview_title(self) -> str:
        return self.title.strip() or self.assistant_name

    @rx.var
    def preview_launcher_text(self) -> str:
        return self.launcher_text.strip() or "Chat"

    @rx.var
    def preview_color(self) -> str:
        """The colour as typed, once it is a colour (the preview keeps the last good one)."""
        return self.color if widget.is_color(self.color) else widget.DEFAULT_COLOR

    @rx.var
    def script_tag(self) -> str:
        return f'<script src="{self.app_url}/widget.js" data-key="{self.key}" async></script>'

    @rx.var
    def signed_tag(self) -> str:
        return (
            f'<script src="{self.app_url}/widget.js" data-key="{self.key}"\n'
            '        data-identity="{{ gptstudio_identity(user.email) }}" async></script>'
        )

    @rx.event
    @shows_error
    def load(self) -> Any:
        refused = self._open_assistant()
        if refused is not None:
            return refused
        settings = get_settings()
        self.app_url, self.max_age = settings.base_url, settings.widget_identity_max_age_seconds
        self.secret = ""
        config = widget.get_config(**self._target())
        self._show(config)
        self._show_look(config.look)
        return None

    def _target(self) -> dict[str, Any]:
        return {"actor": self._actor(), "assistant_id": self.assistant_id}

    def _show(self, config: widget.WidgetConfig) -> None:
        self.enabled, self.published = config.enabled, config.is_published
        self.key, self.has_secret = config.key, config.has_secret
        self.origins = list(config.origins)
        self.origins_text = "\n".join(config.origins)
        self.error = ""

    def _show_look(self, look: widget.WidgetLook) -> None:
        self.color, self.title, self.greeting = look.color, look.title, look.greeting
        self.position, self.launcher = look.position, look.launcher
        self.launcher_text = look.launcher_text

    @rx.event
    def set_look_field(self, name: str, value: str) -> None:
        """One field of the look as the creator types it (the preview follows)."""
        if name in ("color", "title", "greeting", "position", "launcher", "launcher_text"):
            setattr(self, name, str(value))

    @rx.event
    @shows_error
    def save_look(self) -> Any:
        look = {
            "color": self.color, "title": self.title, "greeting": self.greeting,
            "position": self.position, "launcher": self.launcher,
            "launcher_text": self.launcher_text,
        }  # fmt: skip
        config = widget.set_look(**self._target(), look=look)
        self._show(config)
        self._show_look(config.look)
        return rx.toast.success("The widget's look is saved; pages show it on their next load.")

    @rx.event
    def set_origins_text(self, value: str) -> None:
        self.origins_text = value

    @rx.event
    @shows_error
    def toggle(self, on: bool) -> Any:
        self._show(widget.set_enabled(**self._target(), enabled=on))
        return rx.toast.success("The widget is on." if on else "The widget is off.")

    @rx.event
    @shows_error  # what was typed stays in the box, to be fixed
    def save_origins(self, form: dict[str, Any]) -> Any:
        text = str(form.get("origins", self.origins_text))
        self.origins_text = text
        self._show(widget.set_origins(**self._target(), origins=text))
        return rx.toast.success(f"{len(self.origins)} allowed origin(s) saved.")

    @rx.event
    @shows_error
    def rotate_key(self) -> Any:
        self._show(widget.rotate_key(**self._target()))
        return rx.toast.warning("New key: update the <script> tag on your site.")

    @rx.event
    @shows_error
    def rotate_secret(self) -> Any:
        self.secret = widget.rotate_secret(**self._target())
        self._show(widget.get_config(**self._target()))
        return rx.toast.warning("New secret: identities signed with the old one are refused.")

    @rx.event
    @shows_error
    def reveal_secret(self) -> None:
        self.secret = widget.reveal_secret(**self._target())

    @rx.event
    def hide_secret(self) -> None:
        self.secret = ""


def _switch_card() -> rx.Component:
    s = WidgetSettingsState
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.switch(checked=s.enabled, on_change=s.toggle, id="widget-enabled"),
                rx.text(
                    rx.cond(s.enabled, "The widget is on", "The widget is off"),
                    weight="medium",
                    id="widget-state",
                ),
                align="center",
            ),
            rx.cond(
                ~s.published,
                rx.callout(
                    "This assistant is not published yet: the widget shows a notice until it is.",
                    icon="info",
                    color_scheme="amber",
                ),
            ),
            rx.cond(
                s.enabled & (s.origins.length() == 0),
                rx.callout(
                    "No site may embed the widget yet: add your site's origin below.",
                    icon="triangle_alert",
                    color_scheme="amber",
                    id="no-origins",
                ),
            ),
            spacing="3",
        ),
        width="100%",
    )


def _origins_card() -> rx.Component:
    s = WidgetSettingsState
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Allowed origins", size="4"),
                rx.text(
                    "One per line, exactly as the browser shows it: scheme, host and port, "
                    "e.g. https://www.example.com. Only pages on these sites can show the chat.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.text_area(
                    name="origins",
                    value=s.origins_text,
                    on_change=s.set_origins_text,
                    rows="4",
                    width="100%",
                    placeholder="https://www.example.com",
                    id="widget-origins",
                ),
                submit_button("Save origins", id="save-origins"),
                spacing="3",
            ),
            on_submit=s.save_origins,
        ),
        width="100%",
    )


def _look_field(label: str, name: str, **props: Any) -> rx.Component:
    s = WidgetSettingsState
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(
            value=getattr(s, name),
            on_change=lambda v: s.set_look_field(name, v),
            id=f"look-{name.replace('_', '-')}",
            width="100%",
            **props,
        ),
        spacing="1",
        width="100%",
    )


def _look_choice(label: str, name: str, options: dict[str, str]) -> rx.Component:
    s = WidgetSettingsState
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.radio_group.root(
            rx.hstack(
                *(
                    rx.radio_group.item(text, value=value, id=f"look-{name}-is-{value}")
                    for value, text in options.items()
                ),
                spacing="3",
            ),
            value=getattr(s, name),
            on_change=lambda v: s.set_look_field(name, v),
        ),
        spacing="1",
    )


def _look_preview() -> rx.Component:
    """The widget on a stand-in page, drawn from what is typed (not yet saved)."""
    s = WidgetSettingsState
    corner = rx.cond(s.position == "left", "flex-start", "flex-end")
    launcher = rx.box(
        rx.icon("message-square", size=20),
        rx.cond(s.launcher == "text", rx.text(s.preview_launcher_text, weight="bold")),
        id="preview-launcher",
        display="flex", align_items="center", justify_content="center", gap="8px",
        background=s.preview_color, color="white", height="48px",
        width=rx.cond(s.launcher == "text", "auto", "48px"),
        padding=rx.cond(s.launcher == "text", "0 18px", "0"),
        border_radius=rx.cond(s.launcher == "text", "24px", "50%"),
        box_shadow="0 4px 14px rgba(0,0,0,.25)",
    )  # fmt: skip
    panel = rx.box(
        rx.box(
            rx.text(s.preview_title, weight="bold", id="preview-title"),
            background=s.preview_color, color="white", padding="8px 12px",
        ),
        rx.box(
            rx.box(
                "How do I start?", background=s.preview_color, color="white",
                padding="6px 10px", border_radius="10px", align_self="flex-end",
            ),
            rx.box(
                "Ask me anything.", background="var(--gray-3)", padding="6px 10px",
                border_radius="10px", align_self="flex-start",
            ),
            display="flex", flex_direction="column", gap="6px", padding="10px",
        ),
        id="preview-panel",
        width="220px", background="white", color="#1f2937", border_radius="10px",
        overflow="hidden", box_shadow="0 6px 24px rgba(0,0,0,.2)", font_size="13px",
    )  # fmt: skip
    greeting = rx.cond(
        s.greeting.strip() != "",
        rx.box(
            s.greeting, id="preview-greeting",
            background="white", color="#1f2937", padding="8px 12px", border_radius="10px",
            border_top="3px solid " + s.preview_color, max_width="220px", font_size="13px",
            box_shadow="0 4px 14px rgba(0,0,0,.2)",
        ),
    )  # fmt: skip
    return rx.box(
        rx.vstack(panel, greeting, launcher, align_items=corner, spacing="3", width="100%"),
        id="look-preview",
        custom_attrs={"data-position": s.position},
        background="var(--gray-3)", border_radius="8px", padding="16px", width="100%",
    )  # fmt: skip


def _look_card() -> rx.Component:
    s = WidgetSettingsState
    return rx.card(
        rx.vstack(
            rx.heading("Look", size="4"),
            rx.text(
                "How the widget looks on your site. The preview follows what you type; pages "
                "that embed the widget show the saved look on their next load.",
                size="2",
                color_scheme="gray",
            ),
            rx.grid(
                rx.vstack(
                    rx.hstack(
                        rx.vstack(
                            rx.text("Colour", size="2", weight="medium"),
                            rx.el.input(
                                type="color",
                                value=s.preview_color,
                                id="look-color-picker",
                                on_change=lambda v: s.set_look_field("color", v),
                                style={"width": "48px", "height": "32px", "border": "0"},
                            ),
                            spacing="1",
                        ),
                        _look_field("Colour code", "color", max_length=7),
                        width="100%",
                    ),
                    _look_field("Title", "title", max_length=60, placeholder=s.assistant_name),
                    _look_field(
                        "Greeting beside the launcher (empty: none)",
                        "greeting",
                        max_length=160,
                        placeholder="Questions? Ask me.",
                    ),
                    _look_choice(
                        "Position", "position", {"right": "Bottom right", "left": "Bottom left"}
                    ),
                    _look_choice(
                        "Launcher", "launcher", {"icon": "Round icon", "text": "Button with text"}
                    ),
                    rx.cond(
                        s.launcher == "text",
                        _look_field(
                            "Launcher text", "launcher_text", max_length=24, placeholder="Chat"
                        ),
                    ),
                    rx.button("Save look", on_click=s.save_look, id="save-look"),
                    spacing="3",
                    width="100%",
                ),
                _look_preview(),
                columns=rx.breakpoints(initial="1", sm="2"),
                spacing="4",
                width="100%",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _embed_card() -> rx.Component:
    s = WidgetSettingsState
    return rx.card(
        rx.vstack(
            rx.heading("Embed", size="4"),
            rx.hstack(
                rx.text("Publishable key:", size="2"),
                rx.code(s.key, id="widget-key"),
                rx.button(
                    "Rotate key",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=s.rotate_key,
                    id="rotate-key",
                ),
                align="center",
            ),
            rx.text("Paste this before </body> on every page that should show the chat:", size="2"),
            copyable_code(s.script_tag, "script-tag"),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _identity_card() -> rx.Component:
    s = WidgetSettingsState
    return rx.card(
        rx.vstack(
            rx.heading("Signed-in visitors", size="4"),
            rx.text(
                "Visitors chat anonymously on the assistant's free tier. To give your own "
                "signed-in users their GPT Studio subscription, sign their GPT Studio e-mail on "
                "your server with the widget secret and put the token in data-identity "
                "(or call GPTStudioWidget.setIdentity(token)). Format: <email>.<expiry unix "
                "seconds>.<hex HMAC-SHA256 of '<email>.<expiry>'>. The expiry may be at most ",
                s.max_age,
                " seconds ahead. Never put the secret in a page.",
                size="2",
            ),
            rx.hstack(
                rx.button(
                    "Show secret", variant="soft", on_click=s.reveal_secret, id="show-secret"
                ),
                rx.button(
                    "Rotate secret",
                    variant="soft",
                    color_scheme="red",
                    on_click=s.rotate_secret,
                    id="rotate-secret",
                ),
            ),
            rx.cond(
                s.secret != "",
                secret_callout(
                    "Your widget secret. Keep it on your server only.",
                    s.secret,
                    id_="widget-secret",
                    actions=(rx.button("Hide", size="1", variant="soft", on_click=s.hide_secret),),
                ),
            ),
            copyable_code(s.signed_tag, "signed-tag"),
            rx.text("Python", weight="medium", size="2"),
            code_block(PYTHON_SNIPPET, "python-snippet"),
            rx.text("Node.js", weight="medium", size="2"),
            code_block(NODE_SNIPPET, "node-snippet"),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


@add_page(route="/assistant/widget", title="Widget · GPT Studio", on_load=WidgetSettingsState.load)
def widget_settings_page() -> rx.Component:
    return page(
        assistant_header(),
        form_error(WidgetSettingsState.error),
        _switch_card(),
        _origins_card(),
        _look_card(),
        rx.cond(WidgetSettingsState.key != "", _embed_card()),
        rx.cond(WidgetSettingsState.has_secret, _identity_card()),
    )

"""Widget settings for one of the creator's assistants (``/assistant/widget?id=N``): turn the
embeddable chat widget on or off, list the sites allowed to embed it, copy the ``<script>`` tag,
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
        self._show(widget.get_config(**self._target()))
        return None

    def _target(self) -> dict[str, Any]:
        return {"actor": self._actor(), "assistant_id": self.assistant_id}

    def _show(self, config: widget.WidgetConfig) -> None:
        self.enabled, self.published = config.enabled, config.is_published
        self.key, self.has_secret = config.key, config.has_secret
        self.origins = list(config.origins)
        self.origins_text = "\n".join(config.origins)
        self.error = ""

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
        rx.cond(WidgetSettingsState.key != "", _embed_card()),
        rx.cond(WidgetSettingsState.has_secret, _identity_card()),
    )

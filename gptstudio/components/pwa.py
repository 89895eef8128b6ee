"""The installable web app (issue #20): what every page's ``<head>`` carries so that a phone can
install GPT Studio and open it offline. The files themselves are in ``assets/``: the manifest
(``manifest.webmanifest``), the icons (``icons/``), the service worker (``sw.js``, which caches
the app shell) and ``pwa.js`` (registers the worker, shows the "you are offline" state)."""

from __future__ import annotations

import reflex as rx

# Radix indigo 9, the theme's accent (rxconfig.py), and the dark theme's page background.
THEME_COLOR = "#3e63dd"
DARK_THEME_COLOR = "#111113"


def installable_app_head() -> list[rx.Component]:
    return [
        # The page resizes with the on-screen keyboard, so the chat's composer stays above it;
        # content reaches the edges of notched screens (their insets are padded in app.css).
        rx.el.meta(
            name="viewport",
            content=(
                "width=device-width, initial-scale=1, viewport-fit=cover, "
                "interactive-widget=resizes-content"
            ),
        ),
        rx.el.link(rel="manifest", href="/manifest.webmanifest"),
        rx.el.meta(name="theme-color", content=THEME_COLOR, media="(prefers-color-scheme: light)"),
        rx.el.meta(
            name="theme-color", content=DARK_THEME_COLOR, media="(prefers-color-scheme: dark)"
        ),
        rx.el.link(rel="apple-touch-icon", href="/icons/icon-192.png"),
        rx.el.meta(name="mobile-web-app-capable", content="yes"),
        rx.el.script(src="/pwa.js", defer=True),
    ]

"""Reflex settings only; every value comes from the one Settings object."""

import reflex as rx

from gptstudio.settings import get_settings

settings = get_settings()

# Behind a load balancer the browser must reach the app (and its WebSocket) at the public URL,
# not at the replica's own port, which Reflex would otherwise write into the compiled frontend.
public = {"api_url": settings.public_url, "deploy_url": settings.public_url}

config = rx.Config(
    **(public if settings.public_url else {}),
    app_name="gptstudio",
    frontend_port=settings.port,
    backend_port=settings.port,
    redis_url=settings.redis_url or None,
    # Several web processes share state through Redis; one embedded process keeps it on disk.
    state_manager_mode="redis" if settings.redis_url else "disk",
    telemetry_enabled=False,
    # Reflex reflects any Origin with credentials by default ("*"): a page on another port of
    # the same site could read a signed-in user's files. Only the app's own origin is allowed
    # (the socket checks it too); the widget's routes answer their listed origins themselves.
    cors_allowed_origins=settings.app_origins,
    show_built_with_reflex=False,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
)

"""The Reflex app: Reflex mounted inside the HTTP API, every page registered. Nothing else."""

import reflex as rx

from gptstudio import pages  # noqa: F401  (records every page)
from gptstudio.api import app as api
from gptstudio.components.pwa import installable_app_head
from gptstudio.logs import configure_logging
from gptstudio.pages.registry import PAGES
from gptstudio.state.auth import handle_backend_error

configure_logging()

app = rx.App(
    api_transformer=api,
    backend_exception_handler=handle_backend_error,
    stylesheets=["/app.css"],
    head_components=installable_app_head(),
)
for render, options in PAGES:
    app.add_page(render, **options)

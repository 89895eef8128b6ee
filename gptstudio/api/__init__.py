"""The HTTP side of the app: a FastAPI app that wraps Reflex (``rx.App(api_transformer=...)``).

Routes live in one module per noun; middleware here counts every request (Reflex's included).
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gptstudio.api import ops

REQUESTS = Counter(
    "gptstudio_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
LATENCY = Histogram(
    "gptstudio_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
]


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    path = str(scope.get("path", ""))
    # Reflex internals keep their first segment; every page or asset is one label.
    return "/" + path.split("/")[1] if path.startswith("/_") else "frontend"


class ObservabilityMiddleware:
    """Pure ASGI middleware: Prometheus counts/latency and security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method, route = scope.get("method", ""), _route_label(scope)
            REQUESTS.labels(method, route, str(status["code"])).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - start)


def create_api() -> FastAPI:
    """The FastAPI app Reflex mounts itself into."""
    api = FastAPI(title="GPT Studio", docs_url="/api/docs", openapi_url="/api/openapi.json")
    api.include_router(ops.router)
    api.add_middleware(ObservabilityMiddleware)
    return api


app = create_api()

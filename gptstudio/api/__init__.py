"""The HTTP side of the app: a FastAPI app that wraps Reflex (``rx.App(api_transformer=...)``).

Routes live in one module per noun; middleware here counts every request (Reflex's included).
"""

from __future__ import annotations

import secrets
import time
from ipaddress import ip_address
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gptstudio import cache
from gptstudio.api import (
    account,
    auth,
    bundles,
    chat,
    documents,
    fine_tuning,
    model_list,
    ops,
    stripe_webhook,
    widget,
)
from gptstudio.api.errors import (
    ERROR_RESPONSES,
    domain_error_handler,
    error_body,
    http_error_handler,
    unstorable_value_handler,
    validation_error_handler,
)
from gptstudio.errors import DomainError
from gptstudio.services import access
from gptstudio.settings import get_settings
from gptstudio.stripe_client import stripe_csp_sources

REQUESTS = Counter(
    "gptstudio_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
LATENCY = Histogram(
    "gptstudio_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
HSTS = b"max-age=31536000; includeSubDomains"


def content_security_policy(
    app_origins: tuple[str, ...], extra: dict[str, tuple[str, ...]] | None = None
) -> str:
    """The pages' CSP, as strict as Reflex allows; each exception says why:

    * ``script-src 'unsafe-inline'``: Reflex's compiled pages boot with inline scripts (React
      Router's hydration data) whose hashes change with every build;
    * ``script-src 'unsafe-eval'``: Reflex runs server-sent client actions through ``eval``
      (``rx.call_script``: the page loads that set and clear the HttpOnly session cookie, the
      move to a sign-in provider; toasts and clipboard);
    * ``style-src 'unsafe-inline'``: Radix and Emotion write style elements and attributes at
      run time;
    * ``connect-src``: the socket, on the app's own origins only (not any ``ws:`` host);
    * ``extra``: sources per directive on top (Stripe's documented list where Checkout is
      embedded, :func:`gptstudio.stripe_client.stripe_csp_sources`).

    The session cookie is HttpOnly, so script that slips through still cannot read it."""
    sockets = " ".join(
        origin.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        for origin in app_origins
    )
    more = {k: " " + " ".join(v) for k, v in (extra or {}).items()}

    def _(directive: str) -> str:
        return more.get(directive, "")

    return (
        f"default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'{_('script-src')}; "
        "style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:{_('img-src')}; font-src 'self' data:; "
        f"connect-src 'self' {sockets}{_('connect-src')}; frame-src 'self'{_('frame-src')}; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )


def security_headers() -> list[tuple[bytes, bytes]]:
    """Headers every response carries (a route's own CSP wins); HSTS in production."""
    settings = get_settings()
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            content_security_policy(settings.app_origins, stripe_csp_sources()).encode(),
        ),
    ]
    if settings.is_production:
        headers.append((b"strict-transport-security", HSTS))
    return headers


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


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
        self.security_headers = security_headers()

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
                if b"content-security-policy" in present:
                    # A route with its own policy (the widget frame: frame-ancestors per
                    # assistant) decides framing itself; X-Frame-Options would override it.
                    present.add(b"x-frame-options")
                headers += [h for h in self.security_headers if h[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method, route = scope.get("method", ""), _route_label(scope)
            REQUESTS.labels(method, route, str(status["code"])).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - start)


class OriginCheckMiddleware:
    """CSRF defence for cookie-carrying state changes: a cross-origin browser request is refused.

    Requests authenticated by an ``Authorization`` header (API keys) are not CSRF-prone and pass;
    so do non-browser clients, which send no ``Origin``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in UNSAFE_METHODS:
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            origin = headers.get("origin", "")
            host = headers.get("host", "")
            cross = origin and origin.split("://", 1)[-1] != host
            if cross and "cookie" in headers and "authorization" not in headers:
                response = JSONResponse(
                    error_body("Cross-site request refused.", status=403, code="csrf"),
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _document_errors(api: FastAPI) -> None:
    """The schema says what the API answers: a bad request is a 400 OpenAI error (the
    validation handler), not FastAPI's 422 ``HTTPValidationError``."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


OPS_PATHS = ("/metrics", "/api/docs", "/api/openapi.json", "/api/docs/oauth2-redirect")


class OpsGateMiddleware:
    """In production, the operations pages (metrics, the API's docs and schema) are served only
    to the configured addresses or with the ops token; anyone else gets a 404."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in OPS_PATHS and not _ops_allowed(scope):
            response = JSONResponse(
                error_body("Not found.", status=404, code="not_found"), status_code=404
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _ops_allowed(scope: Scope) -> bool:
    settings = get_settings()
    if not settings.is_production:
        return True
    headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
    token = settings.ops_token.get_secret_value()
    if token and secrets.compare_digest(headers.get("authorization", ""), f"Bearer {token}"):
        return True
    client = scope.get("client") or ("", 0)
    address = access.client_address(
        peer=str(client[0]), forwarded_for=headers.get("x-forwarded-for", "")
    )
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in settings.ops_networks)


def create_api() -> FastAPI:
    """The FastAPI app Reflex mounts itself into. Every process that serves it (the Reflex
    backend, a uvicorn worker) takes part in the request-path caches."""
    cache.install()
    api = FastAPI(title="GPT Studio", docs_url="/api/docs", openapi_url="/api/openapi.json")
    for module in (
        ops,
        auth,
        account,
        model_list,
        documents,
        bundles,
        chat,
        fine_tuning,
        stripe_webhook,
        widget,
    ):
        api.include_router(module.router, responses=ERROR_RESPONSES)
    _document_errors(api)
    api.add_exception_handler(DomainError, domain_error_handler)
    api.add_exception_handler(RequestValidationError, validation_error_handler)
    api.add_exception_handler(StarletteHTTPException, http_error_handler)
    for unstorable in (DataError, OverflowError, UnicodeEncodeError):
        api.add_exception_handler(unstorable, unstorable_value_handler)
    api.add_middleware(OriginCheckMiddleware)
    api.add_middleware(OpsGateMiddleware)
    api.add_middleware(ObservabilityMiddleware)
    return api


app = create_api()

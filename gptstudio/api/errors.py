"""OpenAI-style JSON errors for the HTTP API, from the typed domain errors.

Quotas answer like OpenAI: 429 ``rate_limit_exceeded`` (requests per minute) or
``insufficient_quota`` (tokens for the period) with ``Retry-After`` and the ``x-ratelimit-*``
headers; 402 ``payment_required`` names the page where a plan can be chosen.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from gptstudio.errors import DomainError, InvalidInput, NotFound, PaymentRequired

_TYPES = {401: "authentication_error", 402: "payment_required", 403: "permission_error",
          404: "not_found_error", 429: "rate_limit_error", 503: "server_error"}  # fmt: skip
_CODE_TYPES = {"insufficient_quota": "insufficient_quota"}


def error_body(message: str, *, status: int, code: str | None = None) -> dict[str, object]:
    return {
        "error": {
            "message": message,
            "type": _CODE_TYPES.get(code or "", _TYPES.get(status, "invalid_request_error")),
            "param": None,
            "code": code,
        }
    }


async def validation_error_handler(_request: Request, error: Exception) -> JSONResponse:
    """A malformed request body, as an OpenAI-style 400 naming the first bad field."""
    errors: list[dict[str, Any]] = getattr(error, "errors", list)()
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ())[1:])
    message = f"{where}: {first.get('msg', 'invalid request')}" if where else "Invalid request."
    return JSONResponse(error_body(message, status=400, code="invalid_request"), status_code=400)


async def domain_error_handler(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    code = getattr(error, "code", None) or type(error).__name__.lower()
    if isinstance(error, NotFound) and "model" in str(error):
        code = "model_not_found"
    message, status = str(error), error.status_code
    if isinstance(error, InvalidInput):
        code = "invalid_value"
        if request.url.path.startswith("/v1/"):
            status = 400  # the OpenAI protocol answers bad parameters with 400
    if isinstance(error, PaymentRequired):
        code = "payment_required"
        if error.upgrade_url and error.upgrade_url not in message:
            message = f"{message} Choose a plan: {error.upgrade_url}"
    headers = dict(getattr(error, "headers", None) or {})
    if error.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(
        error_body(message, status=status, code=code),
        status_code=status,
        headers=headers or None,
    )

"""OpenAI-style JSON errors for the HTTP API, from the typed domain errors.

Quotas answer like OpenAI: 429 ``rate_limit_exceeded`` (requests per minute) or
``insufficient_quota`` (tokens for the period) with ``Retry-After`` and the ``x-ratelimit-*``
headers; 402 ``payment_required`` names the page where a plan can be chosen.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gptstudio.errors import DomainError, InvalidInput, PaymentRequired, type_for


class ErrorObject(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error of the HTTP API (the OpenAI error object), as the OpenAPI schema says."""

    error: ErrorObject


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "The request was refused (OpenAI error)"},
    "5XX": {"model": ErrorResponse, "description": "Unavailable for now (OpenAI error)"},
}


def error_body(
    message: str, *, status: int, code: str | None = None, type: str | None = None
) -> dict[str, object]:
    """The OpenAI error object; ``type`` defaults to the status's (:func:`type_for`)."""
    return {
        "error": {
            "message": message,
            "type": type or type_for(status),
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
    """A domain error as its own status, type and code (``Retry-After`` and the error's own
    headers with it; ``WWW-Authenticate`` on a 401)."""
    assert isinstance(error, DomainError)
    message, status = str(error), error.status_code
    if isinstance(error, InvalidInput) and request.url.path.startswith("/v1/"):
        status = 400  # the OpenAI protocol answers bad parameters with 400
    upgrade_url = error.upgrade_url if isinstance(error, PaymentRequired) else ""
    if upgrade_url and upgrade_url not in message:
        message = f"{message} Choose a plan: {upgrade_url}"
    headers = dict(getattr(error, "headers", None) or {})
    if error.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(
        error_body(message, status=status, code=error.code, type=error.type),
        status_code=status,
        headers=headers or None,
    )


async def unstorable_value_handler(_request: Request, error: Exception) -> JSONResponse:
    """A value the database or a codec cannot hold (an id beyond its integer range, NUL in
    text, a lone surrogate) that no route check caught: the client's mistake, a 400, never a
    500. Routes check what they can first; this is the net under them."""
    return JSONResponse(
        error_body(
            "A value in the request is out of range or is not valid text.",
            status=400, code="invalid_request",
        ),
        status_code=400,
    )  # fmt: skip


async def http_error_handler(_request: Request, error: Exception) -> JSONResponse:
    """Starlette's own refusals (405 with ``Allow``, 404 of no route) in the same OpenAI error
    shape as every other error, instead of ``{"detail": …}``."""
    status = int(getattr(error, "status_code", 500))
    detail = getattr(error, "detail", None)
    message = detail if isinstance(detail, str) and detail else "The request was refused."
    code = {404: "not_found", 405: "method_not_allowed"}.get(status)
    return JSONResponse(
        error_body(message, status=status, code=code),
        status_code=status,
        headers=getattr(error, "headers", None),
    )

"""OpenAI-style JSON errors for the HTTP API, from the typed domain errors."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from gptstudio.services.api_key import ApiKeyRefused
from gptstudio.services.errors import DomainError

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          429: "rate_limit_error"}  # fmt: skip


def error_body(message: str, *, status: int, code: str | None = None) -> dict[str, object]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "invalid_request_error"),
            "param": None,
            "code": code,
        }
    }


async def domain_error_handler(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    code = error.code if isinstance(error, ApiKeyRefused) else type(error).__name__.lower()
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    return JSONResponse(
        error_body(str(error), status=error.status_code, code=code),
        status_code=error.status_code,
        headers=headers,
    )

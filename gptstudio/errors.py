"""Typed domain errors: each carries a message a user can act on, the HTTP status it maps to and
the OpenAI error ``type`` and ``code`` the API answers with (``{"error": {"message", "type",
"param", "code"}}``), so no caller ever reads them from the message.

Every subclass, here or in a service, declares its own ``status_code``, ``type`` and ``code``
(``tests/test_errors.py`` checks it); an error whose status depends on the case sets them per
instance, with :func:`type_for` for the type.
"""

from __future__ import annotations

from typing import Literal

# OpenAI's error type for an HTTP status; ``invalid_request_error`` for every other status.
TYPES = {401: "authentication_error", 402: "payment_required", 403: "permission_error",
         404: "not_found_error", 429: "rate_limit_error", 500: "server_error",
         503: "server_error"}  # fmt: skip


def type_for(status: int) -> str:
    """The OpenAI error type of an HTTP status."""
    return TYPES.get(status, "invalid_request_error")


class DomainError(Exception):
    """Base of every error a user may see; ``str(error)`` is the message to show."""

    status_code: int = 400
    type: str = "invalid_request_error"
    code: str = "domainerror"


class InvalidInput(DomainError):
    """A value the user can correct (the API answers it with 400 on ``/v1/``, as OpenAI does)."""

    status_code = 422
    type = "invalid_request_error"
    code = "invalid_value"


class EmailTaken(DomainError):
    status_code = 409
    type = "invalid_request_error"
    code = "emailtaken"


class InvalidCredentials(DomainError):
    status_code = 401
    type = "authentication_error"
    code = "invalidcredentials"


class SessionExpired(DomainError):
    """No live session; ``reason`` is why, as the login page names it (``required``: never
    signed in, ``expired``, ``disabled``: the account is)."""

    status_code = 401
    type = "authentication_error"
    code = "sessionexpired"

    def __init__(
        self, message: str, *, reason: Literal["required", "expired", "disabled"] = "expired"
    ) -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDenied(DomainError):
    status_code = 403
    type = "permission_error"
    code = "permissiondenied"


class NotFound(DomainError):
    status_code = 404
    type = "not_found_error"
    code = "notfound"


class ModelNotFound(NotFound):
    """No model (an assistant, or a version of one) by that name or id."""

    code = "model_not_found"


class PaymentRequired(DomainError):
    """A paid plan is needed, or the subscription's payment failed past its grace period."""

    status_code = 402
    type = "payment_required"
    code = "payment_required"

    def __init__(self, message: str, *, upgrade_url: str = "") -> None:
        super().__init__(message)
        self.upgrade_url = upgrade_url


class RateLimited(DomainError):
    """Too many requests (``rate_limit_exceeded``) or tokens for the plan
    (``insufficient_quota``, which is OpenAI's type as well); ``retry_after`` says when to try
    again."""

    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after: int, code: str = "rate_limit_exceeded",
        upgrade_url: str = "",
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.code = code
        self.type = "insufficient_quota" if code == "insufficient_quota" else "rate_limit_error"
        self.upgrade_url = upgrade_url

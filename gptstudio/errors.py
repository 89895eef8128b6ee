"""Typed domain errors: each carries a message a user can act on and the HTTP status it maps to."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a user may see; ``str(error)`` is the message to show."""

    status_code = 400


class InvalidInput(DomainError):
    status_code = 422


class EmailTaken(DomainError):
    status_code = 409


class InvalidCredentials(DomainError):
    status_code = 401


class SessionExpired(DomainError):
    status_code = 401


class PermissionDenied(DomainError):
    status_code = 403


class NotFound(DomainError):
    status_code = 404


class PaymentRequired(DomainError):
    """A paid plan is needed, or the subscription's payment failed past its grace period."""

    status_code = 402

    def __init__(self, message: str, *, upgrade_url: str = "") -> None:
        super().__init__(message)
        self.upgrade_url = upgrade_url


class RateLimited(DomainError):
    """Too many requests or tokens for the plan; ``retry_after`` says when to try again."""

    status_code = 429

    def __init__(
        self, message: str, *, retry_after: int, code: str = "rate_limit_exceeded",
        upgrade_url: str = "",
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.code = code
        self.upgrade_url = upgrade_url

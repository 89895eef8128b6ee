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

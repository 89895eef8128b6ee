"""Typed engine errors, each carrying the HTTP status and OpenAI error fields it becomes.

Imports nothing heavy: the server turns any :class:`EngineError` into
``{"error": {"message", "type", "param", "code"}}`` with :attr:`EngineError.status`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EngineError(Exception):
    """Base of every error the engine raises on purpose; ``str(error)`` is for the caller."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(EngineError, ValueError):
    """A request the engine will never serve as sent (bad parameter, empty messages)."""

    status = 400
    type = "invalid_request_error"


class ContextLengthError(InvalidRequestError):
    """The messages and the answer cannot fit in the model's context window."""

    default_code = "context_length_exceeded"


class ModelNotFoundError(EngineError, LookupError):
    """No base model or loaded adapter has the requested name."""

    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class AdapterLoadError(EngineError):
    """An adapter folder is missing, unreadable, or does not fit the base model."""

    status = 400
    type = "invalid_request_error"
    default_code = "adapter_load_failed"


class AdapterConflictError(EngineError):
    """The adapter name is taken by another adapter, or too many adapters are loaded."""

    status = 409
    type = "invalid_request_error"
    default_code = "adapter_conflict"


class EngineBusyError(EngineError):
    """Every sequence slot and every queue place is taken; retry after a moment."""

    status = 503
    type = "server_error"
    default_code = "engine_busy"

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class EngineStoppedError(EngineError):
    """The engine is shutting down, or its scheduler has stopped."""

    status = 503
    type = "server_error"
    default_code = "engine_stopped"


class GenerationFailedError(EngineError):
    """The model failed while computing (out of memory, a device error)."""

    status = 500
    type = "server_error"
    default_code = "generation_failed"


class AuthenticationError(EngineError):
    """The bearer token is missing or wrong."""

    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class BaseModelLoadError(EngineError):
    """The base model cannot be loaded or is not supported (raised at start-up)."""

    status = 500
    type = "server_error"
    default_code = "base_model_load_failed"


class StreamError(EngineError):
    """An error object a server sent inside a streamed answer (it failed after the answer
    began); read by :func:`engine.protocol.read_events` on the client side."""

    status = 500
    type = "server_error"
    default_code = "generation_failed"

    @classmethod
    def from_body(cls, error: Any) -> StreamError:
        """From the stream's ``{"error": {...}}`` object (any shape: it came over the wire)."""
        if not isinstance(error, dict):
            return cls(str(error))
        code = error.get("code")
        return cls(
            str(error.get("message") or "the answer failed"),
            param=error.get("param"),
            code=str(code) if code else None,
        )

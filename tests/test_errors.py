"""Domain errors carry their HTTP status and OpenAI type and code: every class, in
``gptstudio.errors`` and in the services, declares its own, and they are the ones the API has
always answered with."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import gptstudio.services
from gptstudio import errors, mail
from gptstudio.errors import DomainError, RateLimited, type_for
from gptstudio.services.api_key import ApiKeyRefused
from gptstudio.services.completion import EngineRefused


def every_domain_error() -> list[type[DomainError]]:
    for module in pkgutil.iter_modules(gptstudio.services.__path__):
        importlib.import_module(f"gptstudio.services.{module.name}")
    found, todo = [], [DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("gptstudio."):
                found.append(sub)
                todo.append(sub)
    return found


# (status, type, code) of each error as the API answers it.
WIRE = {
    "InvalidInput": (422, "invalid_request_error", "invalid_value"),
    "EmailTaken": (409, "invalid_request_error", "emailtaken"),
    "InvalidCredentials": (401, "authentication_error", "invalidcredentials"),
    "SessionExpired": (401, "authentication_error", "sessionexpired"),
    "PermissionDenied": (403, "permission_error", "permissiondenied"),
    "NotFound": (404, "not_found_error", "notfound"),
    "ModelNotFound": (404, "not_found_error", "model_not_found"),
    "PaymentRequired": (402, "payment_required", "payment_required"),
    "RateLimited": (429, "rate_limit_error", "rate_limit_exceeded"),
    "SignInFailed": (400, "invalid_request_error", "signinfailed"),
    "UploadRefused": (413, "invalid_request_error", "uploadrefused"),
    "EngineUnavailable": (503, "server_error", "engineunavailable"),
    "EngineRefused": (400, "invalid_request_error", "engine_error"),
    "ApiKeyRefused": (401, "authentication_error", "invalid_api_key"),
    "GateBlocked": (409, "invalid_request_error", "gateblocked"),
    "TierLimitReached": (402, "payment_required", "tier_limit_reached"),
    "OverageNeedsConfirmation": (409, "invalid_request_error", "overage_needs_confirmation"),
    "LockedOut": (429, "rate_limit_error", "lockedout"),
    "BillingNotConfigured": (503, "server_error", "billingnotconfigured"),
    "BillingUnavailable": (502, "invalid_request_error", "billingunavailable"),
    "WebhookRejected": (400, "invalid_request_error", "webhookrejected"),
    "FetchRefused": (422, "invalid_request_error", "fetchrefused"),
    "WidgetUnavailable": (403, "permission_error", "widget_unavailable"),
    "OriginNotAllowed": (403, "permission_error", "origin_not_allowed"),
    "IdentityRejected": (401, "authentication_error", "invalid_identity"),
    "QuotaUnavailable": (503, "server_error", "quota_unavailable"),
    "QuotaExceeded": (429, "rate_limit_error", "rate_limit_exceeded"),
    "RetrievalError": (400, "invalid_request_error", "retrievalerror"),
    # OpenAI's (and the engine's) code for a prompt the context window cannot hold.
    "PromptTooLong": (400, "invalid_request_error", "context_length_exceeded"),
    "MailNotSent": (503, "server_error", "mailnotsent"),
    "BundleRejected": (400, "invalid_request_error", "bundle_rejected"),
    "BaseModelMissing": (409, "invalid_request_error", "base_model_missing"),
    "TrainingRunning": (409, "invalid_request_error", "trainingrunning"),
    # A stored original that cannot be decrypted: the installation's fault, never the user's.
    "KeyMissing": (500, "server_error", "encryptionkeymissing"),
    "StoredFileDamaged": (500, "server_error", "storedfiledamaged"),
}


def test_every_domain_error_declares_its_code_and_answers_as_before() -> None:
    classes = every_domain_error()
    assert {cls.__name__ for cls in classes} == set(WIRE), "a new error: add it to WIRE"
    for cls in classes:
        assert "code" in cls.__dict__, f"{cls.__name__} must declare its own code"
        assert (cls.status_code, cls.type, cls.code) == WIRE[cls.__name__], cls.__name__
        assert cls.type == type_for(cls.status_code), cls.__name__
    assert errors.ModelNotFound.__mro__[1] is errors.NotFound
    assert issubclass(mail.MailNotSent, DomainError)


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    [
        (RateLimited("slow down", retry_after=3), 429, "rate_limit_error", "rate_limit_exceeded"),
        (
            RateLimited("no tokens left", retry_after=3, code="insufficient_quota"),
            429,
            "insufficient_quota",
            "insufficient_quota",
        ),
        (
            ApiKeyRefused("lacks a scope", status_code=403, code="insufficient_scope"),
            403,
            "permission_error",
            "insufficient_scope",
        ),
        (
            EngineRefused("busy", status_code=503, code="engine_busy"),
            503,
            "server_error",
            "engine_busy",
        ),
        (EngineRefused("bad", status_code=400), 400, "invalid_request_error", "engine_error"),
    ],
)
def test_errors_whose_status_depends_on_the_case_set_their_own(
    error: DomainError, status: int, type_: str, code: str
) -> None:
    assert (error.status_code, error.type, error.code) == (status, type_, code)

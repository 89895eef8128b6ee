"""The API answers a domain error with the status, OpenAI type and code the error carries (never
read from its message), Retry-After and the error's own headers, WWW-Authenticate on a 401."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gptstudio.api.errors import domain_error_handler
from gptstudio.errors import (
    DomainError,
    InvalidInput,
    ModelNotFound,
    NotFound,
    PaymentRequired,
    SessionExpired,
)
from gptstudio.services.quota import QuotaExceeded

CASES: dict[str, DomainError] = {
    "model": ModelNotFound("There is no such model version."),
    "plain": NotFound("There is no such model, but this is a plan."),  # the words do not matter
    "invalid": InvalidInput("Pick a temperature between 0 and 2."),
    "payment": PaymentRequired("The Pro plan is needed.", upgrade_url="https://studio.test/p"),
    "session": SessionExpired("Please log in first.", reason="required"),
    "quota": QuotaExceeded(
        "You have used your tokens.",
        retry_after=60,
        code="insufficient_quota",
        upgrade_url="https://studio.test/p",
        headers={"x-ratelimit-limit-tokens": "100"},
    ),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.add_exception_handler(DomainError, domain_error_handler)

    for prefix in ("/v1", "/api"):

        @app.get(prefix + "/raise/{case}")
        def raise_(case: str) -> None:
            raise CASES[case]

    return TestClient(app)


def error_of(client: TestClient, path: str) -> tuple[int, dict[str, object], dict[str, str]]:
    response = client.get(path)
    return response.status_code, response.json()["error"], dict(response.headers)


def test_codes_come_from_the_error_not_its_message(client: TestClient) -> None:
    status, error, _ = error_of(client, "/v1/raise/model")
    assert (status, error["type"], error["code"]) == (404, "not_found_error", "model_not_found")
    status, error, _ = error_of(client, "/v1/raise/plain")
    assert (status, error["type"], error["code"]) == (404, "not_found_error", "notfound")


def test_bad_input_is_a_400_on_the_openai_routes_and_a_422_elsewhere(client: TestClient) -> None:
    for path, expected in (("/v1/raise/invalid", 400), ("/api/raise/invalid", 422)):
        status, error, _ = error_of(client, path)
        assert status == expected
        assert error == {
            "message": "Pick a temperature between 0 and 2.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_value",
        }


def test_payment_names_the_plans_page(client: TestClient) -> None:
    status, error, _ = error_of(client, "/v1/raise/payment")
    assert (status, error["type"], error["code"]) == (402, "payment_required", "payment_required")
    assert error["message"] == "The Pro plan is needed. Choose a plan: https://studio.test/p"


def test_an_expired_session_asks_for_a_bearer(client: TestClient) -> None:
    status, error, headers = error_of(client, "/api/raise/session")
    assert (status, error["type"], error["code"]) == (401, "authentication_error", "sessionexpired")
    assert headers["www-authenticate"] == "Bearer"


def test_a_quota_refusal_carries_its_headers(client: TestClient) -> None:
    status, error, headers = error_of(client, "/v1/raise/quota")
    assert (status, error["type"], error["code"]) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert headers["retry-after"] == "60" and headers["x-ratelimit-limit-tokens"] == "100"

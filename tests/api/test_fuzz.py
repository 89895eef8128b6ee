"""Property-based fuzz of the HTTP API from its own OpenAPI schema (schemathesis): whatever the
generated request, no answer is a 500, and every error is the documented OpenAI error object
(issue 16, break 6). Bounded: a fixed number of examples per operation, no deadline per call."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gptstudio.api import create_api
from gptstudio.models import Role
from gptstudio.services import account, api_key
from gptstudio.settings import get_settings
from tests.factories import publish_assistant

EXAMPLES = 25
pytestmark = pytest.mark.timeout(300)  # per operation and backend; a run takes a few seconds
schema = schemathesis.openapi.from_asgi("/api/openapi.json", create_api())


@pytest.fixture
def credentials(db: str, settings_env: pytest.MonkeyPatch) -> dict[str, str]:
    """A creator's key with every scope and a signed-in session, so that generated requests
    reach past authentication; Stripe webhooks configured, the engine not running."""
    settings_env.setenv("GPTSTUDIO_STRIPE_WEBHOOK_SECRET", "whsec_fuzz")
    settings_env.setenv("GPTSTUDIO_ENGINE_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    owner = account.register(email="fuzz@example.com", password="correct horse battery",
                             role=Role.creator)  # fmt: skip
    publish_assistant(owner, "Bee Mentor")
    raw, _ = api_key.create_key(
        actor=owner, name="fuzz", scopes=["chat", "models:read", "documents:write", "fine_tuning"]
    )
    return {"Authorization": f"Bearer {raw}"}


def error_shape(case: schemathesis.Case, response: Any) -> None:
    if response.status_code < 400 or case.path == "/healthz":  # its 503 names the part down
        return
    body = response.json()
    assert "error" in body, (case.method, case.path, response.status_code, body, case.headers)
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much,
    ],
)  # fmt: skip
def test_no_500_and_errors_in_the_documented_shape(
    case: schemathesis.Case, credentials: dict[str, str]
) -> None:
    for headers in ({}, credentials):  # anonymous, then authenticated
        response = case.call(headers=dict(headers))
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        error_shape(case, response)

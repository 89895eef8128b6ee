"""The app-wide handler of the pages' errors: an expired session goes to the login page with
the reason the error carries (never read from its message); other domain errors are toasts."""

from __future__ import annotations

import pytest
from reflex.event import EventSpec

from gptstudio.errors import NotFound, SessionExpired
from gptstudio.state.auth import LOGIN_NOTICES, handle_backend_error


def redirect_path(spec: EventSpec) -> str:
    return next(str(value._var_value) for name, value in spec.args if name._js_expr == "path")


@pytest.mark.parametrize("reason", ["required", "expired", "disabled"])
def test_an_expired_session_goes_to_log_in_with_its_reason(reason: str) -> None:
    [spec] = handle_backend_error(SessionExpired("Any words at all.", reason=reason))  # type: ignore[arg-type]
    assert redirect_path(spec) == f"/login?reason={reason}"
    assert reason in LOGIN_NOTICES


def test_other_domain_errors_become_a_message() -> None:
    [spec] = handle_backend_error(NotFound("There is no such plan."))
    assert "redirect" not in str(spec.handler.fn.__qualname__ if spec.handler else "")

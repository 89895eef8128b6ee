"""The handler decorators that show a domain error on the page or as a toast."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from gptstudio.errors import InvalidInput
from gptstudio.state.errors import shows_error, toasts_error


class Page:
    """What the decorators need of a page state: an ``error`` var and ``async with``."""

    def __init__(self) -> None:
        self.error = ""
        self.locked = False
        self.error_set_while_locked = False

    async def __aenter__(self) -> Page:
        self.locked = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.locked = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "error" and value:
            object.__setattr__(self, "error_set_while_locked", self.locked)
        object.__setattr__(self, name, value)

    @shows_error
    def save(self, form: dict[str, Any]) -> str:
        if not form:
            raise InvalidInput("Say something first.")
        return "saved"

    @shows_error
    async def fetch(self, url: str) -> str:
        if not url:
            raise InvalidInput("Give an address.")
        return "fetched"

    @toasts_error
    def load(self) -> None:
        raise InvalidInput("Your session has ended.")

    @shows_error
    def crash(self) -> None:
        raise RuntimeError("a bug")


def test_a_domain_error_becomes_the_page_error_and_the_handler_returns_nothing() -> None:
    page = Page()
    assert page.save({}) is None
    assert page.error == "Say something first."
    assert page.save({"text": "hi"}) == "saved"


def test_async_handlers_set_the_error_inside_async_with() -> None:
    page = Page()
    assert asyncio.run(page.fetch("")) is None
    assert page.error == "Give an address."
    assert page.error_set_while_locked  # a background task may only write while it holds the state
    assert asyncio.run(page.fetch("https://example.org")) == "fetched"


def test_toasts_error_returns_an_error_toast() -> None:
    page = Page()
    toast = page.load()
    assert toast is not None
    assert "Your session has ended." in str(toast)
    assert page.error == ""


def test_other_errors_are_not_swallowed() -> None:
    with pytest.raises(RuntimeError):
        Page().crash()


def test_the_handler_keeps_its_signature_for_reflex() -> None:
    assert list(inspect.signature(Page.save).parameters) == ["self", "form"]
    assert inspect.iscoroutinefunction(Page.fetch)  # background tasks must stay coroutines

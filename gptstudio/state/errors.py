"""Domain errors inside event handlers, shown where the user is looking.

A page's handler calls a service; the service raises a :class:`~gptstudio.errors.DomainError`
whose message says what to change. Wrap the handler (under ``@rx.event``) with
:func:`shows_error` to put that message in the page's ``error`` var (the red callout under the
title), or with :func:`toasts_error` to show it as a toast; either way the handler then returns
nothing. Errors that no handler shows reach the app-wide handler in :mod:`gptstudio.state.auth`.

Async handlers, background tasks included, set the message inside ``async with self``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

import reflex as rx

from gptstudio.errors import DomainError

Handler = TypeVar("Handler", bound=Callable[..., Any])


def _set_error(state: Any, error: DomainError) -> None:
    state.error = str(error)


def _toast(state: Any, error: DomainError) -> Any:
    return rx.toast.error(str(error))


def _catching(handler: Handler, report: Callable[[Any, DomainError], Any]) -> Handler:
    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def run_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(self, *args, **kwargs)
            except DomainError as error:
                async with self:  # a no-op outside background tasks
                    return report(self, error)

        return cast(Handler, run_async)

    @functools.wraps(handler)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(self, *args, **kwargs)
        except DomainError as error:
            return report(self, error)

    return cast(Handler, run)


def shows_error(handler: Handler) -> Handler:
    """A DomainError raised by ``handler`` becomes the state's ``error`` message."""
    return _catching(handler, _set_error)


def toasts_error(handler: Handler) -> Handler:
    """A DomainError raised by ``handler`` becomes an error toast."""
    return _catching(handler, _toast)

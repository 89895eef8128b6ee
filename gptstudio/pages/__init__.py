"""The pages; importing this package records every route (:mod:`gptstudio.pages.registry`).

A page with one card or form is a module (state, components and its ``@add_page``); a page with
several cards is a package whose ``state.py`` holds what every card shows, with one module per
card (its substate beside its components) and ``page.py`` putting them together (``data``,
``training``, ``assistant_settings``); ``account`` and ``admin`` are packages of one module per
tab. Shared states live in :mod:`gptstudio.state`, shared components in
:mod:`gptstudio.components`."""

from gptstudio.pages import (
    account,
    admin,
    assistant_settings,
    bundle_import,
    chat,
    checkout_return,
    dashboard,
    data,
    home,
    landing,
    login,
    password,
    plans,
    pricing,
    revenue,
    signup,
    studio_tier,
    training,
    usage,
    widget_settings,
)

__all__ = [
    "account",
    "admin",
    "assistant_settings",
    "bundle_import",
    "chat",
    "checkout_return",
    "dashboard",
    "data",
    "home",
    "landing",
    "login",
    "password",
    "plans",
    "pricing",
    "revenue",
    "signup",
    "studio_tier",
    "training",
    "usage",
    "widget_settings",
]

"""One module per page; importing this package registers every page on the app."""

from gptstudio.pages import (
    account,
    admin,
    chat,
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
    training,
    usage,
    widget_settings,
)

__all__ = [
    "account",
    "admin",
    "chat",
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
    "training",
    "usage",
    "widget_settings",
]

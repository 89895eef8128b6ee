"""One module per page; importing this package registers every page on the app."""

from gptstudio.pages import admin, dashboard, home, landing, login, signup

__all__ = ["admin", "dashboard", "home", "landing", "login", "signup"]

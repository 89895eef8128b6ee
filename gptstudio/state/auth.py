"""The signed-in user, shared by every page; page states subclass it.

The browser holds only a random session token in an HttpOnly, SameSite=Strict cookie that page
script cannot read; the backend reads it from the socket's handshake, and every event resolves it
against the database through :func:`account.user_for_session`, so a revoked or expired session
stops working at once, whatever the UI shows. Signing in or out ends with a page load through
``/auth/session`` or ``/auth/logout``, the HTTP responses that set and clear the cookie.
Domain errors raised by any event handler are turned into messages (or a redirect to the login
page) by :func:`handle_backend_error`.
"""

from __future__ import annotations

import json
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlencode

import reflex as rx
from reflex.event import EventSpec

from gptstudio.errors import DomainError, SessionExpired
from gptstudio.models import Role
from gptstudio.models.user import UserPublic
from gptstudio.services import access, account, mfa


class AuthState(rx.State):
    """Who is signed in; the token itself never leaves the cookie and the backend."""

    user_id: int = 0
    email: str = ""
    display_name: str = ""
    role: str = ""
    notice: str = ""
    # Why the last page refused this user (its role), shown on the page they were sent to
    # instead; cleared when they go on to another page.
    refused: str = ""
    _refused_on: str = ""

    @rx.var
    def signed_in(self) -> bool:
        return self.user_id > 0

    @rx.var
    def home_path(self) -> str:
        return mfa.HOME_BY_ROLE.get(Role(self.role), "/home") if self.role else "/login"

    @property
    def session_token(self) -> str:
        """The session cookie of the socket's handshake (HttpOnly: the page cannot send it)."""
        cookies = SimpleCookie()
        try:
            cookies.load(self.router.headers.cookie or "")
        except CookieError:
            return ""
        morsel = cookies.get(account.SESSION_COOKIE)
        return morsel.value if morsel is not None else ""

    def _start_session(self, token: str, target: str) -> EventSpec:
        """Hand the new session to the browser: a page load through ``/auth/session``, whose
        response sets the HttpOnly cookie, then ``target``."""
        grant = account.cookie_grant(token=token)
        url = f"/auth/session?{urlencode({'grant': grant, 'next': target})}"
        return rx.call_script(f"window.location.assign({json.dumps(url)})")

    def _client(self) -> access.Client:
        headers = self.router.headers
        ip = access.client_address(
            peer=self.router.session.client_ip,  # the socket's peer (no trusted_proxy_hops)
            forwarded_for=headers.raw_headers.get("x-forwarded-for", ""),
        )
        return access.Client(ip=ip, user_agent=headers.user_agent)

    def home_for(self, user: UserPublic) -> str:
        """Where a user lands after logging in: set up MFA first if policy requires it."""
        return mfa.landing_path(user)

    def _remember(self, user: UserPublic) -> None:
        self.user_id, self.email, self.role = user.id, user.email, user.role.value
        self.display_name = user.display_name

    def _forget(self) -> None:
        self.user_id, self.email, self.role, self.display_name = 0, "", "", ""

    def _actor(self) -> UserPublic:
        """The signed-in user, checked against the database now; raises SessionExpired."""
        try:
            user = account.user_for_session(token=self.session_token)
        except SessionExpired:
            self._forget()
            raise
        self._remember(user)
        return user

    def _here(self) -> str:
        """This page's path with its query (``/chat?assistant=bees``): where to come back to."""
        url = self.router.url
        return f"{url.path}?{url.query}" if url.query else url.path

    def _guard(self, *roles: Role) -> Any:
        """On-load check: to the login page (and back here after it), or to the user's own home
        with the reason shown there, when refused."""
        try:
            user = self._actor()
        except SessionExpired as error:
            return _to_login(error.reason, self._here())
        if self.refused and self.router.url.path != self._refused_on:
            self.refused = ""
        if mfa.must_enrol(user) and self.router.url.path != "/account":
            return [
                rx.toast.warning("Your role requires two-step verification; set it up first."),
                rx.redirect("/account"),
            ]
        if roles and user.role != Role.admin and user.role not in roles:
            needed = " or ".join(r.value for r in roles)
            return self._send_home(
                f"That page needs a {needed} account ({self.router.url.path}); you are signed "
                f"in as a {user.role.value}, so you were brought to your own page.",
                mfa.HOME_BY_ROLE[user.role],
            )
        return None

    def _send_home(self, reason: str, home: str) -> EventSpec:
        """To ``home``, where ``reason`` (why this page refused) is shown until the user goes
        on to another page."""
        self.refused, self._refused_on = reason, home
        return rx.redirect(home)

    @rx.event
    def dismiss_refusal(self) -> None:
        self.refused = ""

    @rx.event
    def require_user(self) -> Any:
        return self._guard()

    @rx.event
    def require_creator(self) -> Any:
        return self._guard(Role.creator)

    @rx.event
    def require_admin(self) -> Any:
        return self._guard(Role.admin)

    @rx.event
    def load_optional_user(self) -> None:
        """For public pages: show who is signed in, without requiring it."""
        try:
            self._actor()
        except SessionExpired:
            self._forget()

    @rx.event
    def logout(self) -> Any:
        account.logout(token=self.session_token)
        self._forget()
        # The cookie is HttpOnly: only an HTTP response clears it (the session is over already).
        return rx.call_script("window.location.assign('/auth/logout')")


# Why the login page was shown, by reason (a SessionExpired's, or a sign-out): the URL carries
# the reason, never free text.
LOGIN_NOTICES = {
    "required": "Please log in first.",
    "expired": "Your session has expired. Please log in again.",
    "disabled": "This account is disabled. Contact the administrator.",
    "signed_out": "You are signed out.",
    "account_deleted": "Your account is deleted. Thank you for having used GPT Studio.",
}


def _to_login(reason: str, next_path: str = "") -> list[EventSpec]:
    query = {"reason": reason, **({"next": next_path} if next_path.startswith("/") else {})}
    return [rx.redirect(f"/login?{urlencode(query)}")]


def handle_backend_error(exception: Exception) -> list[EventSpec]:
    """App-wide handler: domain errors become a message; an expired session goes to log in."""
    if isinstance(exception, SessionExpired):
        return _to_login(exception.reason)
    if isinstance(exception, DomainError):
        return [rx.toast.error(str(exception))]
    from reflex.app import default_backend_exception_handler

    return [default_backend_exception_handler(exception)]

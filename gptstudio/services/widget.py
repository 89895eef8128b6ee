"""The embeddable chat widget: per-assistant keys, the origin allowlist and signed identities.

A creator enables the widget on an assistant; it then has

* a **publishable key** (``pk_…``): public, it goes into the ``<script>`` tag and names the
  assistant; rotating it stops every page that still uses the old one;
* a **widget secret** (``ws_…``): shown to the owner on demand, stored encrypted
  (:mod:`gptstudio.services.crypto`); the host site signs its users' identities with it;
* **allowed origins**: exact ``scheme://host[:port]`` values; the iframe's CSP
  ``frame-ancestors`` lists them and chat requests from other sites are refused;
* a **look** (:class:`WidgetLook`): colour, title, a greeting beside the launcher, the corner
  it sits in and the launcher's shape; ``widget.js`` and the iframe read it.

Signed identity (so that the host site's own users get their subscription's entitlements)::

    payload   = "<email>.<expiry>"       # e-mail of the user's GPT Studio account, expiry in
                                        # Unix seconds (at most widget_identity_max_age_seconds
                                        # from now)
    signature = hex(HMAC-SHA256(key=widget secret, message=payload))
    token     = "<email>.<expiry>.<signature>"

A signed identity maps to a GPT Studio account only once that account's owner has linked it
(:func:`link_site`: signed in to GPT Studio, they confirm in a window the widget opens). Until then
the visitor chats as a guest and the widget offers the link, whether or not the e-mail has an
account: whoever holds the widget secret can neither act as another person nor learn whether an
address has an account.

Anonymous visitors chat with ``user_id=None`` and a visitor id that the server issues (the
``/session`` call) and the iframe keeps: ``v1`` + a random nonce + an HMAC of the assistant and the
nonce under the app's secret key (:func:`issue_visitor_id`). A visitor cannot choose its own id (a
made-up, altered or another assistant's id is refused by chat and replaced by ``/session``), so it
cannot get a fresh limit by inventing one. The quota engine (inside
:func:`gptstudio.services.completion.stream_completion`) limits each visitor; on top of that, all
anonymous visitors from one client address share one requests-per-minute limit
(:func:`gptstudio.services.quota.admit_address_async`), since a script can still collect many
issued ids.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gptstudio.db import session_scope, utcnow
from gptstudio.errors import DomainError, InvalidInput, PermissionDenied
from gptstudio.models import Assistant, User, WidgetLink
from gptstudio.models.user import UserPublic
from gptstudio.services import audit, crypto
from gptstudio.services.account import normalize_email
from gptstudio.services.assistant import owned_assistant
from gptstudio.settings import get_settings

KEY_PREFIX = "pk_"
SECRET_PREFIX = "ws_"  # noqa: S105 (a prefix, not a secret)
MAX_ORIGINS = 20
VISITOR_ID = re.compile(r"^v1[A-Za-z0-9_-]{38}$")  # "v1", a 16-character nonce, a 22-char HMAC
_KEY_SHAPE = re.compile(r"^pk_[A-Za-z0-9_-]{20,60}$")
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WidgetUnavailable(DomainError):
    """The key is unknown, rotated, or the widget is off: nothing to show."""

    status_code = 403
    type = "permission_error"
    code = "widget_unavailable"


class OriginNotAllowed(PermissionDenied):
    code = "origin_not_allowed"


class IdentityRejected(DomainError):
    """A host site's signed end-user identity that cannot be accepted (tampered, expired…)."""

    status_code = 401
    type = "authentication_error"
    code = "invalid_identity"


_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
POSITIONS = ("right", "left")
LAUNCHERS = ("icon", "text")
DEFAULT_COLOR = "#4f46e5"


def is_color(value: str) -> bool:
    """``#rrggbb``, the colours the widget takes."""
    return bool(_COLOR.match(value))


@dataclass(frozen=True)
class WidgetLook:
    """How the widget looks on the creator's site. Empty texts fall back: the title to the
    assistant's name, the launcher's text to "Chat"; no greeting shows no greeting."""

    color: str = DEFAULT_COLOR
    """The launcher, the chat's header and the visitor's messages (``#rrggbb``)."""
    title: str = ""
    """The chat's header (the assistant's name when empty)."""
    greeting: str = ""
    """A short line shown beside the launcher until the visitor opens or dismisses it."""
    position: str = "right"
    """The bottom corner the launcher and the chat sit in: ``right`` or ``left``."""
    launcher: str = "icon"
    """``icon``: a round chat button; ``text``: a pill with the icon and :attr:`launcher_text`."""
    launcher_text: str = ""

    LIMITS: ClassVar[dict[str, int]] = {"title": 60, "greeting": 160, "launcher_text": 24}

    def __post_init__(self) -> None:
        if not _COLOR.match(self.color):
            raise InvalidInput(f"The colour must look like #4f46e5, not {self.color!r}.")
        if self.position not in POSITIONS:
            raise InvalidInput("The widget sits in the bottom right or the bottom left corner.")
        if self.launcher not in LAUNCHERS:
            raise InvalidInput("The launcher is a round icon or a button with text.")
        for name, limit in self.LIMITS.items():
            if len(getattr(self, name)) > limit:
                label = name.replace("_", " ")
                raise InvalidInput(f"The {label} can be at most {limit} characters.")

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> WidgetLook:
        """The stored look (a look stored before a check changed falls back to the defaults)."""
        known = {k: str(v) for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except InvalidInput:
            return cls()

    def to_json(self, *, name: str = "") -> dict[str, str]:
        """The look as widget.js and the iframe read it (``name`` fills an empty title)."""
        return {
            "color": self.color.lower(), "title": self.title or name, "greeting": self.greeting,
            "position": self.position, "launcher": self.launcher,
            "launcher_text": self.launcher_text or "Chat",
        }  # fmt: skip


@dataclass(frozen=True)
class WidgetConfig:
    """What the owner sees and edits on the widget settings page (never the secret)."""

    assistant_id: int
    name: str
    is_published: bool
    enabled: bool
    key: str
    has_secret: bool
    origins: list[str]
    look: WidgetLook = field(default_factory=WidgetLook)


@dataclass(frozen=True)
class WidgetTarget:
    """The assistant behind a publishable key, as the public widget routes need it."""

    assistant_id: int
    slug: str
    name: str
    key: str
    origins: tuple[str, ...]
    secret: str = field(default="", repr=False)  # encrypted, as stored: identities check it
    welcome_message: str = ""
    starters: tuple[str, ...] = ()
    look: WidgetLook = field(default_factory=WidgetLook)

    def look_json(self) -> dict[str, str]:
        """The look as widget.js and the iframe read it."""
        return self.look.to_json(name=self.name)


@dataclass(frozen=True)
class Visitor:
    """Who chats through the widget: a signed-in subscriber (``user_id``) or an anonymous
    visitor (``user_id`` None), always with the visitor id the iframe keeps."""

    user_id: int | None
    email: str
    visitor_id: str
    link_needed: bool = False  # a valid signed identity that its account has not linked yet


# --- the owner's side ------------------------------------------------------------------------


def _config(assistant: Assistant) -> WidgetConfig:
    return WidgetConfig(
        assistant_id=assistant.id or 0, name=assistant.name, is_published=assistant.is_published,
        enabled=assistant.widget_enabled, key=assistant.widget_key,
        has_secret=bool(assistant.widget_secret), origins=list(assistant.widget_origins or []),
        look=WidgetLook.from_json(assistant.widget_look),
    )  # fmt: skip


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _audit(session: Session, actor: UserPublic, assistant: Assistant, action: str) -> None:
    audit.record(
        session, action=f"widget.{action}", actor_id=actor.id, target=f"assistant:{assistant.id}"
    )


def get_config(*, actor: UserPublic, assistant_id: int) -> WidgetConfig:
    """The widget settings of one of the actor's assistants."""
    with session_scope() as session:
        return _config(owned_assistant(session, actor=actor, assistant_id=assistant_id))


def set_enabled(*, actor: UserPublic, assistant_id: int, enabled: bool) -> WidgetConfig:
    """Turn the widget on (a key and a secret are made the first time) or off (the key stays, so
    turning it on again brings back the pages that embed it)."""
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.widget_enabled = enabled
        if enabled and not assistant.widget_key:
            assistant.widget_key = _new_key()
        if enabled and not assistant.widget_secret:
            assistant.widget_secret = crypto.encrypt(_new_secret())
        assistant.updated_at = utcnow()
        _audit(session, actor, assistant, "enabled" if enabled else "disabled")
        session.flush()
        return _config(assistant)


def set_look(*, actor: UserPublic, assistant_id: int, look: dict[str, Any]) -> WidgetConfig:
    """Save the widget's look (checked by :class:`WidgetLook`); pages that embed the widget show
    it on their next load."""
    fields = {k: str(v).strip() for k, v in look.items() if k in WidgetLook.__dataclass_fields__}
    checked = WidgetLook(**fields)
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.widget_look = dataclasses.asdict(checked)
        assistant.updated_at = utcnow()
        _audit(session, actor, assistant, "look_changed")
        session.flush()
        return _config(assistant)


def rotate_key(*, actor: UserPublic, assistant_id: int) -> WidgetConfig:
    """A new publishable key; the old one stops working at once."""
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.widget_key = _new_key()
        assistant.updated_at = utcnow()
        _audit(session, actor, assistant, "key_rotated")
        session.flush()
        return _config(assistant)


def rotate_secret(*, actor: UserPublic, assistant_id: int) -> str:
    """A new widget secret, returned in clear to show the owner; identities signed with the old
    one are refused from now on."""
    secret = _new_secret()
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.widget_secret = crypto.encrypt(secret)
        assistant.updated_at = utcnow()
        _audit(session, actor, assistant, "secret_rotated")
    return secret


def reveal_secret(*, actor: UserPublic, assistant_id: int) -> str:
    """The current widget secret in clear, for its owner (audited)."""
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        if not assistant.widget_secret:
            raise InvalidInput("This widget has no secret yet: enable the widget first.")
        _audit(session, actor, assistant, "secret_revealed")
        return _decrypt_secret(assistant.widget_secret)


def _decrypt_secret(stored: str) -> str:
    try:
        return crypto.decrypt(stored)
    except InvalidInput:
        raise InvalidInput(
            "The widget secret cannot be read (was the server's secret key changed?). Rotate "
            "the widget secret and update the site that signs identities."
        ) from None


def normalize_origin(raw: str) -> str:
    """``raw`` as an exact origin (``https://example.com``, ``http://127.0.0.1:8080``), or an
    :class:`InvalidInput` saying what is wrong with it."""
    text = raw.strip()
    hint = "write it as https://example.com (scheme and host, optional port, nothing after)"
    if not text:
        raise InvalidInput(f"An origin is empty: {hint}.")
    if "*" in text:
        raise InvalidInput(f"'{text}' has a wildcard: list each site exactly; {hint}.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidInput(f"'{text}' has an invalid port; {hint}.") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise InvalidInput(f"'{text}' is not an http(s) origin; {hint}.")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"'{text}' contains a user name or password; {hint}.")
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith("?"):
        raise InvalidInput(f"'{text}' has a path, query or fragment; {hint}.")
    host = (parts.hostname or "").lower()
    ipv6 = host.startswith("[") or ":" in host
    if not host or (not ipv6 and not _HOST.match(host)):
        raise InvalidInput(f"'{text}' does not have a valid host name; {hint}.")
    if ipv6:
        host = f"[{host.strip('[]')}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origins(text: str | list[str]) -> list[str]:
    """Origins one per line (or comma-separated), normalized and de-duplicated in order; the
    first bad one is named with its line."""
    lines = text if isinstance(text, list) else re.split(r"[\n,]", text)
    origins: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            origin = normalize_origin(line)
        except InvalidInput as error:
            raise InvalidInput(f"Line {number}: {error}") from None
        if origin not in origins:
            origins.append(origin)
    if len(origins) > MAX_ORIGINS:
        raise InvalidInput(f"List at most {MAX_ORIGINS} origins (got {len(origins)}).")
    return origins


def set_origins(*, actor: UserPublic, assistant_id: int, origins: str | list[str]) -> WidgetConfig:
    """Replace the allowlist: only pages on these origins may embed the widget."""
    cleaned = parse_origins(origins)
    with session_scope() as session:
        assistant = owned_assistant(session, actor=actor, assistant_id=assistant_id)
        assistant.widget_origins = cleaned
        assistant.updated_at = utcnow()
        _audit(session, actor, assistant, "origins_changed")
        session.flush()
        return _config(assistant)


# --- the visitor's side ----------------------------------------------------------------------


def resolve(key: str) -> WidgetTarget:
    """The published, widget-enabled assistant behind a publishable key, or
    :class:`WidgetUnavailable` saying why the widget cannot open."""
    key = key.strip()
    if not _KEY_SHAPE.match(key):
        raise WidgetUnavailable(
            "This chat widget's key is not valid. The site owner should copy the <script> tag "
            "again from GPT Studio's widget settings."
        )
    with session_scope() as session:
        assistant = session.exec(select(Assistant).where(Assistant.widget_key == key)).first()
        if assistant is None:
            raise WidgetUnavailable(
                "This chat widget's key is unknown or was rotated. The site owner should copy the "
                "new <script> tag from GPT Studio's widget settings."
            )
        if not assistant.widget_enabled:
            raise WidgetUnavailable("This chat widget is turned off by its owner.")
        if not assistant.is_published:
            raise WidgetUnavailable(f"{assistant.name} is not published yet; try again later.")
        return WidgetTarget(
            assistant_id=assistant.id or 0, slug=assistant.slug, name=assistant.name, key=key,
            origins=tuple(assistant.widget_origins or ()), secret=assistant.widget_secret,
            look=WidgetLook.from_json(assistant.widget_look),
            welcome_message=assistant.welcome_message,
            starters=tuple(str(s) for s in assistant.conversation_starters),
        )  # fmt: skip


def check_origin(target: WidgetTarget, origin: str) -> str:
    """The embedding page's origin, normalized, if the assistant allows it; otherwise
    :class:`OriginNotAllowed` naming the site."""
    if not origin.strip() or origin.strip() == "null":
        raise OriginNotAllowed(
            "This chat widget works only inside a page of a site its owner allowed; the "
            "embedding page's origin is unknown."
        )
    try:
        normalized = normalize_origin(origin)
    except InvalidInput:
        raise OriginNotAllowed(f"This chat widget cannot run on '{origin[:200]}'.") from None
    if normalized not in target.origins:
        raise OriginNotAllowed(
            f"This chat widget is not allowed on {normalized}. The assistant's owner can add "
            "this site under Widget settings → Allowed origins."
        )
    return normalized


def frame_ancestors(target: WidgetTarget) -> str:
    """The CSP ``frame-ancestors`` source list: the allowed origins, or ``'none'``."""
    return " ".join(target.origins) if target.origins else "'none'"


def sign_identity(secret: str, *, email: str, expires_at: int) -> str:
    """What a host site computes (here for tests and the docs): ``<email>.<expiry>.<hex HMAC>``."""
    payload = f"{email}.{expires_at}"
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{digest}"


def verify_identity(target: WidgetTarget, token: str, *, now: float | None = None) -> str:
    """The e-mail a host site vouches for with a signed identity, or :class:`IdentityRejected`
    saying what is wrong with the token (malformed, tampered, expired, too long-lived). Whether
    the e-mail has an account is not looked at here (see :func:`linked_user`)."""
    now = time.time() if now is None else now
    subject, expiry, signature = _split(token)
    stored = target.secret
    if not stored:
        raise IdentityRejected(
            "This widget has no secret to check signed identities with; its owner must enable "
            "the widget again."
        )
    expected = sign_identity(_decrypt_secret(stored), email=subject, expires_at=int(expiry))
    if not hmac.compare_digest(expected.rsplit(".", 1)[1], signature.lower()):
        raise IdentityRejected(
            "The signed identity was rejected: its signature does not match (the token was "
            "altered, or signed with another or an old widget secret)."
        )
    seconds = int(expiry) - int(now)
    if seconds <= 0:
        when = datetime.fromtimestamp(int(expiry), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise IdentityRejected(
            f"The signed identity expired at {when}; the site must sign a fresh one."
        )
    limit = get_settings().widget_identity_max_age_seconds
    if seconds > limit:
        raise IdentityRejected(
            f"The signed identity is valid for too long ({seconds} s; at most {limit} s): sign "
            "it with an expiry closer to now."
        )
    return subject


def _split(token: str) -> tuple[str, str, str]:
    parts = token.strip().rsplit(".", 2)
    shape = "expected <email>.<expiry unix seconds>.<hex HMAC-SHA256>"
    if len(parts) != 3 or len(token) > 700:
        raise IdentityRejected(f"The signed identity is malformed: {shape}.")
    subject, expiry, signature = parts
    if not subject or not re.fullmatch(r"[0-9]{1,12}", expiry):  # ASCII digits only
        raise IdentityRejected(f"The signed identity is malformed: {shape}.")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", signature):
        raise IdentityRejected(f"The signed identity's signature is malformed: {shape}.")
    return subject, expiry, signature


def _account(session: Session, email: str) -> User | None:
    try:
        canonical = normalize_email(email)
    except InvalidInput:
        return None
    user = session.exec(select(User).where(col(User.email) == canonical)).first()
    return user if user is not None and user.is_active else None


def linked_user(target: WidgetTarget, email: str) -> UserPublic | None:
    """The active account with this e-mail if its owner linked this assistant's widget; None
    otherwise (no account, a disabled one, or no consent: the caller cannot tell which)."""
    with session_scope() as session:
        user = _account(session, email)
        if user is None:
            return None
        link = session.exec(
            select(WidgetLink.id).where(
                WidgetLink.user_id == user.id, WidgetLink.assistant_id == target.assistant_id
            )
        ).first()
        return None if link is None else UserPublic.model_validate(user, from_attributes=True)


def link_site(*, actor: UserPublic, target: WidgetTarget, identity: str) -> None:
    """The signed-in ``actor`` consents that this widget may chat as them whenever its site
    signs their e-mail. The identity must be valid and name the actor's own address."""
    email = verify_identity(target, identity)
    try:
        same = normalize_email(email) == actor.email
    except InvalidInput:
        same = False
    if not same:
        raise IdentityRejected(
            f"This site signed in someone else, not {actor.email}; sign in to GPT Studio with "
            "the account you use on that site."
        )
    try:
        with session_scope() as session:
            exists = session.exec(
                select(WidgetLink.id).where(
                    WidgetLink.user_id == actor.id, WidgetLink.assistant_id == target.assistant_id
                )
            ).first()
            if exists is None:
                session.add(WidgetLink(user_id=actor.id, assistant_id=target.assistant_id))
                audit.record(
                    session, action="widget.linked", actor_id=actor.id,
                    target=f"assistant:{target.assistant_id}",
                )  # fmt: skip
    except IntegrityError:
        pass  # a double click linked it in a concurrent request: linked either way


def _visitor_signature(assistant_id: int, nonce: str) -> str:
    secret = get_settings().secret_key.get_secret_value().encode()
    message = f"gptstudio:widget-visitor:{assistant_id}:{nonce}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]  # 132 bits


def issue_visitor_id(assistant_id: int) -> str:
    """A new anonymous visitor id for this assistant's widget, signed with the app's secret."""
    nonce = secrets.token_urlsafe(12)  # 16 characters
    return f"v1{nonce}{_visitor_signature(assistant_id, nonce)}"


def issued_visitor_id(assistant_id: int, visitor_id: str) -> bool:
    """Whether this server issued ``visitor_id`` for this assistant's widget."""
    if not VISITOR_ID.match(visitor_id or ""):
        return False
    nonce, signature = visitor_id[2:18], visitor_id[18:]
    return hmac.compare_digest(_visitor_signature(assistant_id, nonce), signature)


def check_visitor_id(target: WidgetTarget, visitor_id: str) -> str:
    """The visitor id, if this server issued it for this widget; otherwise :class:`InvalidInput`
    (the iframe gets a new one from ``/session`` when the page reloads)."""
    if not visitor_id:
        raise InvalidInput("The visitor id is missing; reload the page to get a new one.")
    if not issued_visitor_id(target.assistant_id, visitor_id):
        raise InvalidInput(
            "The visitor id was not issued by this chat (made up, altered, or another "
            "widget's); reload the page to get a new one."
        )
    return visitor_id


def session_visitor_id(target: WidgetTarget, visitor_id: str) -> str:
    """For ``/session``: the visitor id the iframe kept if this server issued it for this widget,
    otherwise a new one (the iframe stores what it gets back)."""
    if issued_visitor_id(target.assistant_id, visitor_id):
        return visitor_id
    return issue_visitor_id(target.assistant_id)


def visitor(target: WidgetTarget, *, identity: str, visitor_id: str) -> Visitor:
    """Who is chatting: the signed-in subscriber when ``identity`` is given (and valid),
    otherwise the anonymous visitor."""
    visitor_id = check_visitor_id(target, visitor_id)
    if identity.strip():
        user = linked_user(target, verify_identity(target, identity))
        if user is None:  # no account, or not linked: the same guest either way
            return Visitor(user_id=None, email="", visitor_id=visitor_id, link_needed=True)
        return Visitor(user_id=user.id, email=user.email, visitor_id=visitor_id)
    return Visitor(user_id=None, email="", visitor_id=visitor_id)

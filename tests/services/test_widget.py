"""The embeddable widget's rules: keys and secrets, the origin allowlist, signed identities."""

from __future__ import annotations

import re
import time

import pytest
from sqlmodel import select

from gptstudio.db import session_scope
from gptstudio.errors import InvalidInput, NotFound
from gptstudio.models import Assistant, AuditEvent, Role
from gptstudio.services import account, assistant, widget
from gptstudio.settings import get_settings

PASSWORD = "correct horse battery"


@pytest.fixture
def people(db: str) -> dict[str, account.UserPublic]:
    return {
        "admin": account.register(email="ada@example.com", password=PASSWORD),
        "cy": account.register(email="cy@example.com", password=PASSWORD, role=Role.creator),
        "cleo": account.register(email="cleo@example.com", password=PASSWORD, role=Role.creator),
        "sue": account.register(email="sue@example.com", password=PASSWORD),
    }


@pytest.fixture
def bees(people: dict[str, account.UserPublic]) -> int:
    """A published assistant of cy's with the widget on, allowed on one site."""
    made = assistant.create_assistant(actor=people["cy"], name="Bee Mentor")
    with session_scope() as session:
        row = session.get(Assistant, made.id)
        assert row is not None
        row.is_published = True
    widget.set_enabled(actor=people["cy"], assistant_id=made.id, enabled=True)
    widget.set_origins(actor=people["cy"], assistant_id=made.id, origins="https://hive.example")
    return made.id


def _target(people: dict[str, account.UserPublic], assistant_id: int) -> widget.WidgetTarget:
    return widget.resolve(widget.get_config(actor=people["cy"], assistant_id=assistant_id).key)


# --- keys and secrets --------------------------------------------------------------------------


def test_enabling_makes_a_key_and_an_encrypted_secret(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    config = widget.get_config(actor=people["cy"], assistant_id=bees)
    assert config.enabled and config.has_secret and config.key.startswith("pk_")
    secret = widget.reveal_secret(actor=people["cy"], assistant_id=bees)
    assert secret.startswith("ws_") and len(secret) > 40
    with session_scope() as session:
        stored = session.get(Assistant, bees)
        assert stored is not None and stored.widget_secret
        assert secret not in stored.widget_secret  # encrypted at rest
        actions = set(session.exec(select(AuditEvent.action)).all())
    assert {"widget.enabled", "widget.secret_revealed", "widget.origins_changed"} <= actions
    target = widget.resolve(config.key)
    assert (target.assistant_id, target.origins) == (bees, ("https://hive.example",))


def test_key_rotation_invalidates_the_old_key(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    old = widget.get_config(actor=people["cy"], assistant_id=bees).key
    new = widget.rotate_key(actor=people["cy"], assistant_id=bees).key
    assert new != old and new.startswith("pk_")
    assert widget.resolve(new).assistant_id == bees
    with pytest.raises(widget.WidgetUnavailable, match="unknown or was rotated"):
        widget.resolve(old)


def test_turned_off_unpublished_and_junk_keys_are_refused(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    key = widget.get_config(actor=people["cy"], assistant_id=bees).key
    widget.set_enabled(actor=people["cy"], assistant_id=bees, enabled=False)
    with pytest.raises(widget.WidgetUnavailable, match="turned off"):
        widget.resolve(key)
    again = widget.set_enabled(actor=people["cy"], assistant_id=bees, enabled=True)
    assert again.key == key  # turning it back on keeps the pages that embed it working
    with session_scope() as session:
        row = session.get(Assistant, bees)
        assert row is not None
        row.is_published = False
    with pytest.raises(widget.WidgetUnavailable, match="not published yet"):
        widget.resolve(key)
    with pytest.raises(widget.WidgetUnavailable, match="key is not valid"):
        widget.resolve("<script>")


def test_only_the_owner_configures_the_widget(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    for call in (widget.get_config, widget.rotate_key, widget.rotate_secret, widget.reveal_secret):
        with pytest.raises(NotFound):
            call(actor=people["cleo"], assistant_id=bees)
    with pytest.raises(NotFound):
        widget.set_origins(actor=people["cleo"], assistant_id=bees, origins="https://evil.test")
    assert widget.get_config(actor=people["admin"], assistant_id=bees).enabled


# --- origins -----------------------------------------------------------------------------------


def test_origins_are_normalized_and_deduplicated() -> None:
    text = (
        "HTTPS://Hive.Example:443/\nhttp://127.0.0.1:8080\n\n https://hive.example , http://[::1]:9"
    )
    assert widget.parse_origins(text) == [
        "https://hive.example",
        "http://127.0.0.1:8080",
        "http://[::1]:9",
    ]


@pytest.mark.parametrize(
    ("junk", "message"),
    [
        ("hive.example", "not an http(s) origin"),
        ("ftp://hive.example", "not an http(s) origin"),
        ("javascript:alert(1)", "not an http(s) origin"),
        ("https://hive.example/shop", "path, query or fragment"),
        ("https://hive.example?x=1", "path, query or fragment"),
        ("https://*.hive.example", "wildcard"),
        ("https://bob:pw@hive.example", "user name or password"),
        ("https://hive.example:99999", "invalid port"),
        ("https://hi ve.example", "valid host name"),
        ("https://-hive.example", "valid host name"),
    ],
)
def test_junk_origins_get_clear_errors(junk: str, message: str) -> None:
    with pytest.raises(InvalidInput, match="Line 2: .*" + re.escape(message)) as caught:
        widget.parse_origins(f"https://ok.example\n{junk}")
    assert "https://example.com" in str(caught.value)  # says how to write one


def test_too_many_origins_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at most 20 origins"):
        widget.parse_origins([f"https://site{n}.example" for n in range(21)])


def test_a_bad_origin_list_changes_nothing(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    with pytest.raises(InvalidInput, match="Line 2"):
        widget.set_origins(actor=people["cy"], assistant_id=bees, origins="https://a.example\nnope")
    assert widget.get_config(actor=people["cy"], assistant_id=bees).origins == [
        "https://hive.example"
    ]


def test_origin_checks_and_frame_ancestors(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    target = _target(people, bees)
    assert widget.check_origin(target, "https://HIVE.example:443") == "https://hive.example"
    assert widget.frame_ancestors(target) == "https://hive.example"
    with pytest.raises(widget.OriginNotAllowed, match=r"not allowed on https://evil\.test"):
        widget.check_origin(target, "https://evil.test")
    with pytest.raises(widget.OriginNotAllowed, match="origin is unknown"):
        widget.check_origin(target, "null")
    widget.set_origins(actor=people["cy"], assistant_id=bees, origins="")
    assert widget.frame_ancestors(_target(people, bees)) == "'none'"


# --- signed identities -------------------------------------------------------------------------


def _token(people: dict[str, account.UserPublic], bees: int, email: str, ttl: int) -> str:
    secret = widget.reveal_secret(actor=people["cy"], assistant_id=bees)
    return widget.sign_identity(secret, email=email, expires_at=int(time.time()) + ttl)


def test_a_signed_identity_is_the_subscriber_only_once_they_linked_the_site(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    """Issue 16, break 4: a creator signing another person's e-mail with the widget secret got
    a session as that subscriber (billed to them), and learnt whether the address had an
    account. Now a signed identity is a guest until its account links the widget, and an
    unknown address is answered exactly like a known one."""
    target = _target(people, bees)
    visitor_id = widget.issue_visitor_id(bees)
    token = _token(people, bees, "Sue@Example.com", 300)
    assert widget.verify_identity(target, token) == "Sue@Example.com"
    sue = widget.visitor(target, identity=token, visitor_id=visitor_id)
    nobody = widget.visitor(
        target, identity=_token(people, bees, "nobody@example.com", 300), visitor_id=visitor_id
    )
    assert sue == nobody == widget.Visitor(None, "", visitor_id, link_needed=True)

    # Only Sue herself can link, with an identity naming her (any spelling of it).
    with pytest.raises(widget.IdentityRejected, match="someone else"):
        widget.link_site(actor=people["cy"], target=target, identity=token)
    widget.link_site(actor=people["sue"], target=target, identity=token)
    widget.link_site(actor=people["sue"], target=target, identity=token)  # once is enough
    who = widget.visitor(target, identity=token, visitor_id=visitor_id)
    assert (who.user_id, who.email, who.link_needed) == (people["sue"].id, "sue@example.com", False)
    with session_scope() as session:
        assert "widget.linked" in session.exec(select(AuditEvent.action)).all()


def test_identity_matches_the_documented_hmac(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    """The format the settings page and the README give, computed independently."""
    import hashlib
    import hmac

    secret = widget.reveal_secret(actor=people["cy"], assistant_id=bees)
    expiry = int(time.time()) + 60
    payload = f"sue@example.com.{expiry}"
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert widget.verify_identity(_target(people, bees), f"{payload}.{digest}") == (
        "sue@example.com"
    )


def test_tampered_identities_are_refused(people: dict[str, account.UserPublic], bees: int) -> None:
    target = _target(people, bees)
    token = _token(people, bees, "sue@example.com", 300)
    email, expiry, signature = token.rsplit(".", 2)
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    tampered = [
        f"cy@example.com.{expiry}.{signature}",  # another user
        f"{email}.{int(expiry) + 100}.{signature}",  # a longer life
        f"{email}.{expiry}.{flipped}",  # a forged signature
    ]
    for bad in tampered:
        with pytest.raises(widget.IdentityRejected, match="signature does not match"):
            widget.verify_identity(target, bad)


def test_an_identity_signed_with_a_rotated_secret_is_refused(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    token = _token(people, bees, "sue@example.com", 300)
    new_secret = widget.rotate_secret(actor=people["cy"], assistant_id=bees)
    assert new_secret == widget.reveal_secret(actor=people["cy"], assistant_id=bees)
    with pytest.raises(widget.IdentityRejected, match="signature does not match"):
        widget.verify_identity(_target(people, bees), token)


def test_expired_and_too_long_lived_identities_are_refused(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    target = _target(people, bees)
    with pytest.raises(widget.IdentityRejected, match=r"expired at .* UTC; the site must sign"):
        widget.verify_identity(target, _token(people, bees, "sue@example.com", -5))
    limit = get_settings().widget_identity_max_age_seconds
    with pytest.raises(widget.IdentityRejected, match=f"too long .*at most {limit} s"):
        widget.verify_identity(target, _token(people, bees, "sue@example.com", limit + 120))
    assert widget.verify_identity(target, _token(people, bees, "sue@example.com", limit - 5))


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("sue@example.com", "malformed"),
        ("sue@example.com.soon." + "a" * 64, "malformed"),
        ("sue@example.com.\u00b2." + "a" * 64, "malformed"),  # a digit int() cannot read
        ("sue@example.com.1900000000.nothex", "signature is malformed"),
        ("." + "1900000000." + "a" * 64, "malformed"),
    ],
)
def test_malformed_identities_are_refused(
    people: dict[str, account.UserPublic], bees: int, token: str, message: str
) -> None:
    with pytest.raises(widget.IdentityRejected, match=message):
        widget.verify_identity(_target(people, bees), token)


def test_disabled_accounts_are_guests_even_when_linked(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    target = _target(people, bees)
    token = _token(people, bees, "sue@example.com", 300)
    widget.link_site(actor=people["sue"], target=target, identity=token)
    from gptstudio.models import User

    with session_scope() as session:
        row = session.get(User, people["sue"].id)
        assert row is not None
        row.is_active = False
    who = widget.visitor(target, identity=token, visitor_id=widget.issue_visitor_id(bees))
    assert who.user_id is None and who.link_needed


def test_anonymous_visitors_need_a_visitor_id_this_server_issued(
    people: dict[str, account.UserPublic], bees: int, settings_env: pytest.MonkeyPatch
) -> None:
    target = _target(people, bees)
    issued = widget.issue_visitor_id(bees)
    who = widget.visitor(target, identity="", visitor_id=issued)
    assert (who.user_id, who.visitor_id) == (None, issued)
    assert widget.session_visitor_id(target, issued) == issued
    altered = issued[:20] + ("A" if issued[20] != "A" else "B") + issued[21:]
    foreign = widget.issue_visitor_id(bees + 1)  # another assistant's widget
    for bad in ("", "short", "v_" + "a" * 38, issued + "<", altered, foreign):
        with pytest.raises(InvalidInput, match="visitor id"):
            widget.visitor(target, identity="", visitor_id=bad)
        replaced = widget.session_visitor_id(target, bad)
        assert replaced != bad and widget.issued_visitor_id(bees, replaced)
    # Signed with the app's secret: another installation's (or an old secret's) ids are not ours.
    settings_env.setenv("GPTSTUDIO_SECRET_KEY", "another-secret-" + "x" * 32)
    get_settings.cache_clear()
    assert not widget.issued_visitor_id(bees, issued)


# --- the look ----------------------------------------------------------------------------------


def test_the_look_is_saved_checked_and_read_by_the_public_side(
    people: dict[str, account.UserPublic], bees: int
) -> None:
    assert _target(people, bees).look_json() == {
        "color": "#4f46e5", "title": "Bee Mentor", "greeting": "", "position": "right",
        "launcher": "icon", "launcher_text": "Chat",
    }  # fmt: skip
    look = {
        "color": "#0E7C3A", "title": "Ask the beekeeper", "greeting": "Questions about hives?",
        "position": "left", "launcher": "text", "launcher_text": "Ask us",
    }  # fmt: skip
    saved = widget.set_look(actor=people["cy"], assistant_id=bees, look=look)
    assert saved.look == widget.WidgetLook(**look)
    assert _target(people, bees).look_json() == {**look, "color": "#0e7c3a"}
    with session_scope() as session:
        actions = session.exec(select(AuditEvent.action)).all()
    assert "widget.look_changed" in actions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"color": "red"}, "colour must look like #4f46e5"),
        ({"color": "#12345g"}, "colour"),
        ({"position": "top"}, "bottom right or the bottom left"),
        ({"launcher": "emoji"}, "round icon or a button with text"),
        ({"title": "t" * 61}, "title can be at most 60"),
        ({"greeting": "g" * 161}, "greeting can be at most 160"),
    ],
)
def test_a_bad_look_is_refused_and_changes_nothing(
    people: dict[str, account.UserPublic], bees: int, change: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        widget.set_look(actor=people["cy"], assistant_id=bees, look=change)
    assert widget.get_config(actor=people["cy"], assistant_id=bees).look == widget.WidgetLook()


def test_only_the_owner_changes_the_look(people: dict[str, account.UserPublic], bees: int) -> None:
    with pytest.raises(NotFound):
        widget.set_look(actor=people["cleo"], assistant_id=bees, look={"color": "#000000"})

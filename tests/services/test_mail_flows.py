"""Password reset and e-mail verification, round trip through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from gptstudio import mail
from gptstudio.db import session_scope, utcnow
from gptstudio.errors import InvalidCredentials, InvalidInput, SessionExpired
from gptstudio.models import ActionToken
from gptstudio.services import account
from gptstudio.settings import get_settings
from tests.conftest import Mailbox

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def test_registration_mails_a_verification_link_that_works_once(db: str, mailbox: Mailbox) -> None:
    user = account.register(email="ada@example.com", password=PASSWORD)
    assert user.email_verified_at is None
    link = mailbox.link("ada@example.com", "verify")
    assert link.startswith(get_settings().base_url)
    assert account.verify_email(token=token_of(link)).email_verified_at is not None
    with pytest.raises(InvalidInput, match="already been used"):
        account.verify_email(token=token_of(link))


def test_password_reset_round_trip(db: str, mailbox: Mailbox) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    old_session = account.login(email="ada@example.com", password=PASSWORD).token
    account.request_password_reset(email="ADA@example.com")
    message = mailbox.wait_for("ada@example.com")
    assert message["Subject"] == "Reset your GPT Studio password"
    token = token_of(mailbox.link("ada@example.com", "reset"))

    with pytest.raises(InvalidInput, match="at least 10"):
        account.reset_password(token=token, new_password="short")
    account.reset_password(token=token, new_password=NEW_PASSWORD)
    with pytest.raises(SessionExpired):
        account.user_for_session(token=old_session)  # every session ended
    with pytest.raises(InvalidCredentials):
        account.login(email="ada@example.com", password=PASSWORD)
    assert account.login(email="ada@example.com", password=NEW_PASSWORD).token
    with pytest.raises(InvalidInput, match="already been used"):
        account.reset_password(token=token, new_password="yet another passphrase")


def test_unknown_email_gets_no_mail_and_no_error(db: str, mailbox: Mailbox) -> None:
    account.request_password_reset(email="nobody@example.com")
    account.request_password_reset(email="not an email")
    assert mailbox.messages == []


def test_expired_and_tampered_links_are_refused(db: str, mailbox: Mailbox) -> None:
    account.register(email="ada@example.com", password=PASSWORD)
    account.request_password_reset(email="ada@example.com")
    token = token_of(mailbox.link("ada@example.com", "reset"))
    with pytest.raises(InvalidInput, match="not valid"):
        account.reset_password(token=token[:-2] + "xx", new_password=NEW_PASSWORD)
    with session_scope() as session:
        for row in session.exec(select(ActionToken)).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
    with pytest.raises(InvalidInput, match="expired"):
        account.reset_password(token=token, new_password=NEW_PASSWORD)


def test_mail_server_down_is_a_clear_error(db: str, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_SMTP_HOST", "127.0.0.1")
    settings_env.setenv("GPTSTUDIO_SMTP_PORT", "1")
    settings_env.setenv("GPTSTUDIO_SMTP_SECURITY", "none")
    get_settings.cache_clear()
    user = account.register(email="ada@example.com", password=PASSWORD)  # the account is kept
    with pytest.raises(mail.MailNotSent, match="could not be sent"):
        account.request_password_reset(email="ada@example.com")
    with pytest.raises(mail.MailNotSent):
        account.resend_verification(actor=user)

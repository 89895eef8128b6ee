"""GPTSTUDIO_ADMIN_EMAIL names the admin: the first account (SSO or not) no longer becomes it,
and the named address becomes admin only once its e-mail is verified."""

from __future__ import annotations

import pytest

from gptstudio.models import Role
from gptstudio.services import account
from gptstudio.settings import get_settings
from tests.conftest import Mailbox

PASSWORD = "correct horse battery"


def test_without_the_setting_the_first_account_is_the_admin(db: str) -> None:
    assert account.register(email="first@example.com", password=PASSWORD).role == Role.admin


def test_the_named_address_becomes_admin_once_verified(
    db: str, mailbox: Mailbox, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("GPTSTUDIO_ADMIN_EMAIL", "Boss@Example.com")
    get_settings.cache_clear()
    first = account.register(email="first@example.com", password=PASSWORD)
    boss = account.register(email="boss@example.com", password=PASSWORD)
    assert (first.role, boss.role) == (Role.subscriber, Role.subscriber)  # nobody proved it yet
    link = mailbox.link("boss@example.com", "verify")
    assert account.verify_email(token=link.split("token=")[1]).role == Role.admin

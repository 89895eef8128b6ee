"""Users, their roles, and server-side login sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Role(StrEnum):
    """What a user may do: admins everything, creators own assistants, subscribers chat."""

    admin = "admin"
    creator = "creator"
    subscriber = "subscriber"


class Tier(StrEnum):
    """A user's GPT Studio plan (set by an admin): it orders their training jobs on the queue."""

    free = "free"
    individual = "individual"
    professional = "professional"
    enterprise = "enterprise"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True, description="lower-cased")
    password_hash: str = Field(max_length=255)
    display_name: str = Field(default="", max_length=120)
    role: str = Field(default=Role.subscriber.value, max_length=20, index=True)
    tier: str = Field(default=Tier.free.value, max_length=20)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    email_verified_at: datetime | None = None
    password_changed_at: datetime | None = None
    # TOTP secret, encrypted with a key derived from the app's secret key; empty when MFA is off.
    mfa_secret: str = Field(default="", max_length=400)
    mfa_enabled_at: datetime | None = None
    # The last TOTP time step accepted: a code is never accepted twice.
    mfa_last_step: int = 0
    stripe_customer_id: str = Field(default="", max_length=120, index=True)
    # Stripe Connect: the creator's Express account (payouts of their assistants' subscriptions).
    stripe_account_id: str = Field(default="", max_length=120, index=True)
    connect_details_submitted: bool = False
    connect_charges_enabled: bool = False
    connect_payouts_enabled: bool = False
    # Erased at the user's request: the row stays, pseudonymised, for the billing records that
    # point at it (invoices, usage); everything personal is gone (services/erasure.py).
    deleted_at: datetime | None = None


class UserPublic(BaseModel):
    """What other layers (and the UI) may see of a user: never the password hash."""

    id: int
    email: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime
    tier: Tier = Tier.free
    email_verified_at: datetime | None = None
    mfa_enabled_at: datetime | None = None

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None


class UserSession(SQLModel, table=True):
    """A login: the browser holds a random token, the database only its SHA-256."""

    __tablename__ = "user_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=400)


class MfaBackupCode(SQLModel, table=True):
    """One of ten single-use recovery codes, stored as a SHA-256."""

    __tablename__ = "mfa_backup_codes"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class OAuthIdentity(SQLModel, table=True):
    """A login at an OpenID Connect / OAuth provider linked to a local account."""

    __tablename__ = "oauth_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    provider: str = Field(max_length=40)
    subject: str = Field(max_length=255)
    email: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow)


class ActionToken(SQLModel, table=True):
    """A single-use, expiring token mailed to a user (password reset, e-mail verification)."""

    __tablename__ = "action_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    purpose: str = Field(max_length=30)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime
    used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class LoginThrottle(SQLModel, table=True):
    """Failed-login counter for one account or IP (used when no Redis is configured)."""

    __tablename__ = "login_throttles"

    key: str = Field(primary_key=True, max_length=400)
    failures: int = 0
    locked_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class WidgetLink(SQLModel, table=True):
    """A user's one-time consent that an assistant's widget may chat as them when the host site
    signs their e-mail: without it a signed identity is only a guest (a creator holding the
    widget secret cannot act as, or find out about, any other account)."""

    __tablename__ = "widget_links"
    __table_args__ = (UniqueConstraint("user_id", "assistant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    assistant_id: int = Field(foreign_key="assistants.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)

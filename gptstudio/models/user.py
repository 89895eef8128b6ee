"""Users, their roles, and server-side login sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from gptstudio.db import utcnow


class Role(StrEnum):
    """What a user may do: admins everything, creators own assistants, subscribers chat."""

    admin = "admin"
    creator = "creator"
    subscriber = "subscriber"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True, description="lower-cased")
    password_hash: str = Field(max_length=255)
    display_name: str = Field(default="", max_length=120)
    role: str = Field(default=Role.subscriber.value, max_length=20, index=True)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)


class UserPublic(BaseModel):
    """What other layers (and the UI) may see of a user: never the password hash."""

    id: int
    email: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime


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

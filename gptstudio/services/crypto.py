"""Hashing of passwords and bearer secrets, and signing and encryption keyed by the app's secret
key (one derived key per purpose)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from gptstudio.errors import InvalidInput
from gptstudio.settings import get_settings

_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    """The stored form of a bearer secret (session token, API key, mailed token): its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash uses older parameters than the current hasher (rehash on login)."""
    return _hasher.check_needs_rehash(password_hash)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- registration and e-mail verification -------------------------------------------------


def _secret() -> str:
    return get_settings().secret_key.get_secret_value()


def sign(payload: dict[str, Any], *, purpose: str) -> str:
    """A URL-safe, timestamped, signed form of ``payload`` that only ``purpose`` accepts."""
    return URLSafeTimedSerializer(_secret(), salt=f"gptstudio:{purpose}").dumps(payload)


def unsign(token: str, *, purpose: str, max_age: int, what: str = "link") -> dict[str, Any]:
    """The payload of a token from :func:`sign`, or :class:`InvalidInput` saying why not."""
    serializer = URLSafeTimedSerializer(_secret(), salt=f"gptstudio:{purpose}")
    try:
        payload = serializer.loads(token, max_age=max_age)
    except SignatureExpired:
        raise InvalidInput(f"This {what} has expired. Please start again.") from None
    except BadSignature:
        raise InvalidInput(f"This {what} is not valid. Please start again.") from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"This {what} is not valid. Please start again.")
    return payload


def _fernet() -> Fernet:
    key = hashlib.sha256(f"gptstudio:fernet:{_secret()}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(text: str) -> str:
    """Encrypt a small secret (a TOTP seed) for storage."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt what :func:`encrypt` stored; a changed secret key makes it unreadable."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise InvalidInput(
            "The stored MFA secret cannot be read (was the secret key changed?). "
            "Ask an admin to reset your MFA."
        ) from None

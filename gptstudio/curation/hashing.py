"""Canonical JSON and stable identifiers.

Ids and content hashes must not depend on dict order, the process's hash seed or the platform, so
everything that is hashed goes through :func:`canonical_json` first. Dataclasses, enums, tuples and
sets are turned into plain JSON (sets sorted) so option objects can be hashed as they are.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Set
from typing import Any

from gptstudio.curation.errors import InvalidParameterError


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Set):
        return sorted(value, key=lambda item: canonical_json(value=item))
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise InvalidParameterError(
        f"{type(value).__name__} values cannot be recorded in a dataset snapshot; "
        "use strings, numbers, lists, dicts or dataclasses of those."
    )


def canonical_json(*, value: Any) -> str:
    """Serialise ``value`` deterministically: sorted keys, no spaces, UTF-8, no NaN."""
    try:
        return json.dumps(
            value,
            default=_plain,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except ValueError as error:
        if isinstance(error, InvalidParameterError):
            raise
        raise InvalidParameterError(f"Not recordable as JSON: {error}.") from error


def sha256_hex(*, value: Any) -> str:
    """The SHA-256 of ``value``'s canonical JSON, as 64 hex digits."""
    return hashlib.sha256(canonical_json(value=value).encode("utf-8")).hexdigest()


def stable_id(*parts: Any) -> str:
    """A short (20 hex digits, 80 bits) id that depends only on ``parts``."""
    return sha256_hex(value=list(parts))[:20]

"""Safe display and storage names for uploaded files.

Browsers send whatever name the user's file had. :func:`safe_filename` refuses names that try to
leave their folder (``../``, absolute paths) or carry control characters, and sanitises the rest
into one path component that is safe on POSIX and Windows filesystems.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from gptstudio.curation.errors import UnsafeFilenameError

_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)


def _has_control_characters(name: str) -> bool:
    return any(unicodedata.category(character) in {"Cc", "Cf"} for character in name)


def _tries_to_escape(name: str) -> bool:
    parts = [*PurePosixPath(name).parts, *PureWindowsPath(name).parts]
    absolute = name.startswith(("/", "\\")) or PureWindowsPath(name).drive != ""
    return absolute or ".." in parts


def _shorten(name: str, max_length: int) -> str:
    if len(name) <= max_length:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        return name[:max_length]
    return f"{stem[: max_length - len(suffix) - 1]}.{suffix}"


def safe_filename(*, name: str, max_length: int = 200) -> str:
    """Return ``name`` as a single safe path component, or raise :class:`UnsafeFilenameError`.

    Refused: empty names, control or invisible formatting characters, and any path that is
    absolute or contains a ``..`` component. Sanitised: Unicode is NFC-normalised, characters
    that filesystems reserve become ``_``, leading dots and surrounding spaces are removed,
    Windows device names get a ``_`` prefix, and long names are cut keeping the extension.
    """
    if _has_control_characters(name):
        raise UnsafeFilenameError(
            "The filename contains control or invisible characters; rename the file and upload "
            "it again."
        )
    if _tries_to_escape(name):
        raise UnsafeFilenameError(
            f"The filename {name!r} points outside its folder (it is absolute or contains '..'); "
            "rename the file and upload it again."
        )
    cleaned = _FORBIDDEN.sub("_", unicodedata.normalize("NFC", name)).strip().lstrip(".").strip()
    if not cleaned or set(cleaned) <= {"_", " "}:
        raise UnsafeFilenameError("The file has no usable name; rename it and upload it again.")
    if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED:
        cleaned = f"_{cleaned}"
    return _shorten(cleaned, max_length)

"""Encryption at rest of stored files (uploaded originals and their parsed copies): AES-256-GCM
in a streaming construction, keys from ``GPTSTUDIO_ENCRYPTION_KEYS``.

A file is a header naming its key id, then the content in 64 KiB segments, each sealed with
AES-GCM under its own nonce (a random per-file prefix, the segment's number and a last-segment
flag: the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, as Tink's streaming
AEAD and age use it). The header is authenticated with every segment, so a changed key id, a
reordered, altered, dropped or appended segment, or a cut-off file fails with
:class:`StoredFileDamaged`; a key id missing from the settings fails with :class:`KeyMissing`.
Neither a whole upload nor its plaintext is ever held in memory at once.

Keys rotate: the first key is the current one (new files use it), the others only decrypt.
``python -m gptstudio.rotate_keys`` re-encrypts every stored original under the current key.
Files stored before encryption existed (no header) are read as they are until rotated.

Without keys, development generates one in ``<data_dir>/encryption.keys`` on first use (logged);
production refuses to start (see :class:`gptstudio.settings.Settings`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gptstudio.errors import DomainError
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)

MAGIC = b"\x00GPTSTUDIO-AESGCM-STREAM-1\x00"
SEGMENT = 64 * 1024
TAG = 16
PREFIX = 7  # nonce = 7 random bytes + 4-byte segment number + 1-byte last flag
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
KEY_FILE = "encryption.keys"


class KeyMissing(DomainError):
    """A stored file names a key the settings no longer hold."""

    status_code = 500
    type = "server_error"
    code = "encryptionkeymissing"


class StoredFileDamaged(DomainError):
    """A stored file fails its integrity check: changed, cut off or damaged on disk."""

    status_code = 500
    type = "server_error"
    code = "storedfiledamaged"


class InvalidKeys(ValueError):
    """``GPTSTUDIO_ENCRYPTION_KEYS`` (or the generated key file) cannot be read."""


@dataclass(frozen=True)
class Keyring:
    """The keys by id; ``current`` encrypts, every key decrypts."""

    keys: dict[str, bytes]
    current: str

    def key(self, key_id: str, *, name: str = "a stored file") -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyMissing(
                f"{name} is encrypted with key {key_id!r}, which is not in "
                "GPTSTUDIO_ENCRYPTION_KEYS. Add that key back (after the current one): old keys "
                "must stay until `python -m gptstudio.rotate_keys` has re-encrypted every file."
            ) from None


def parse_keys(text: str) -> Keyring:
    """``id:base64,id2:base64`` (the first is current) as a :class:`Keyring`; keys of 16, 24 or
    32 bytes (AES-128/192/256)."""
    keys: dict[str, bytes] = {}
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        key_id, _, encoded = part.partition(":")
        key_id = key_id.strip()
        if not KEY_ID.match(key_id):
            raise InvalidKeys(
                f"encryption key id {key_id!r}: use 1-40 letters, digits, '.', '_' or '-' "
                "(the form is id:base64key, comma-separated, the current key first)"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKeys(f"encryption key {key_id!r} is not valid base64") from None
        if len(key) not in (16, 24, 32):
            raise InvalidKeys(
                f"encryption key {key_id!r} has {len(key)} bytes; AES-GCM needs 16, 24 or 32 "
                "(make one with `python -c 'import os,base64; "
                "print(base64.b64encode(os.urandom(32)).decode())'`)"
            )
        if key_id in keys:
            raise InvalidKeys(f"encryption key id {key_id!r} is given twice")
        keys[key_id] = key
    if not keys:
        raise InvalidKeys("no encryption key given")
    return Keyring(keys=keys, current=next(iter(keys)))


_cached: tuple[tuple[str, str], Keyring] | None = None


def keyring() -> Keyring:
    """The configured keys, or (development, none configured) the generated key file's."""
    global _cached
    settings = get_settings()
    configured = settings.encryption_keys.get_secret_value()
    marker = (configured, str(settings.data_dir.resolve()))
    if _cached is not None and _cached[0] == marker:
        return _cached[1]
    ring = parse_keys(configured) if configured.strip() else _development_keys(settings.data_dir)
    _cached = (marker, ring)
    return ring


def _development_keys(data_dir: Path) -> Keyring:
    path = data_dir / KEY_FILE
    if not path.exists():
        key_id = f"dev-{datetime.now(UTC):%Y%m%d}"
        line = f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}\n"
        data_dir.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting at once agree on the first one's key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as sink:
                sink.write(line)
            log.warning(
                "Generated an encryption key for uploaded files in %s (development only: back "
                "it up with the data folder, or set GPTSTUDIO_ENCRYPTION_KEYS)",
                path,
            )
    try:
        return parse_keys(path.read_text())
    except InvalidKeys as error:
        raise InvalidKeys(f"{path}: {error}") from None


def new_key_line(key_id: str) -> str:
    """A fresh ``id:base64`` entry for ``GPTSTUDIO_ENCRYPTION_KEYS``."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


# --- the format ---------------------------------------------------------------------------


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class EncryptingWriter:
    """Writes ``sink`` as an encrypted stream under the current key; ``close`` seals the last
    segment (without it the file reads as cut off)."""

    def __init__(self, sink: BinaryIO, *, ring: Keyring | None = None) -> None:
        ring = ring or keyring()
        self.key_id = ring.current
        self._aead = AESGCM(ring.key(ring.current))
        self._prefix = secrets.token_bytes(PREFIX)
        encoded_id = self.key_id.encode()
        self._header = MAGIC + bytes([len(encoded_id)]) + encoded_id + self._prefix
        self._sink, self._buffer, self._counter = sink, bytearray(), 0
        sink.write(self._header)

    def write(self, data: bytes) -> None:
        # A full segment is sealed only once more data follows: the last one (sealed by
        # ``close``, flagged as last) is only known then. Whole segments are sealed straight
        # from ``data``, without copying them through the buffer.
        view, start = memoryview(data), 0
        if self._buffer or len(view) <= SEGMENT:
            need = SEGMENT - len(self._buffer)
            if len(view) <= need:
                self._buffer += view
                return
            self._buffer += view[:need]
            self._seal(bytes(self._buffer), last=False)
            self._buffer.clear()
            start = need
        while len(view) - start > SEGMENT:
            self._seal(view[start : start + SEGMENT], last=False)
            start += SEGMENT
        self._buffer += view[start:]

    def close(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, chunk: bytes | memoryview, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._sink.write(self._aead.encrypt(nonce, chunk, self._header))
        self._counter += 1


def _read_header(source: BinaryIO) -> tuple[bytes, str, bytes] | None:
    """``(header, key id, nonce prefix)``, or ``None`` for a file stored before encryption."""
    head = source.read(len(MAGIC))
    if head != MAGIC:
        return None
    length = source.read(1)
    key_id = source.read(length[0]) if length else b""
    prefix = source.read(PREFIX)
    if not length or len(key_id) != length[0] or len(prefix) != PREFIX:
        raise StoredFileDamaged("The stored file is cut off; upload it again.")
    return MAGIC + length + key_id + prefix, key_id.decode("ascii", "replace"), prefix


def key_id_of(path: str | Path) -> str:
    """The id of the key a stored file is encrypted with; ``""`` for a plain (older) file."""
    with Path(path).open("rb") as source:
        header = _read_header(source)
    return header[1] if header else ""


def iter_plain(path: str | Path, *, name: str = "", ring: Keyring | None = None) -> Iterator[bytes]:
    """The stored file's content, decrypted segment by segment (a plain older file as it is).
    Raises :class:`KeyMissing` or :class:`StoredFileDamaged` (``name`` says which file)."""
    label = name or Path(path).name
    with Path(path).open("rb") as source:
        header = _read_header(source)
        if header is None:
            source.seek(0)
            while chunk := source.read(SEGMENT):
                yield chunk
            return
        whole, key_id, prefix = header
        aead = AESGCM((ring or keyring()).key(key_id, name=label))
        damaged = StoredFileDamaged(
            f"{label} failed its integrity check: the stored file was changed, cut off or "
            "damaged on disk. Upload it again."
        )
        counter, sealed = 0, source.read(SEGMENT + TAG)
        while True:
            following = source.read(SEGMENT + TAG)
            last = not following
            try:
                yield aead.decrypt(_nonce(prefix, counter, last), sealed, whole)
            except InvalidTag:
                raise damaged from None
            if last:
                return
            counter, sealed = counter + 1, following


def read_plain(path: str | Path, *, name: str = "") -> bytes:
    """The whole stored file, decrypted (for parsers, which take bytes)."""
    return b"".join(iter_plain(path, name=name))


def write_encrypted(path: str | Path, data: bytes) -> str:
    """Write ``data`` encrypted under the current key (atomically); the key id used."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with partial.open("wb") as sink:
            writer = EncryptingWriter(sink)
            writer.write(data)
            writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return writer.key_id


def reencrypt(path: str | Path, *, name: str = "") -> str:
    """Re-encrypt a stored file under the current key (a plain older file too), replacing it
    atomically; the key id now used. Its content is checked while copied: a damaged file
    raises and is left as it was."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with partial.open("wb") as sink:
            writer = EncryptingWriter(sink)
            for chunk in iter_plain(target, name=name):
                writer.write(chunk)
            writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return writer.key_id

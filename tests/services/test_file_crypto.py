"""Encryption at rest of uploaded originals (issue 16): AES-GCM segments under a key id from the
settings; what is on disk never holds the plaintext, a changed file or an unknown key id fails
with a clear message, plain files stored before encryption still read, and rotation re-encrypts
everything under the current key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from gptstudio import rotate_keys
from gptstudio.db import session_scope
from gptstudio.jobs.documents import parse_stored, parsed_document
from gptstudio.models import Document
from gptstudio.services import document, file_crypto
from gptstudio.settings import Settings, get_settings
from tests.services import test_document
from tests.services.docs import BEES_MD
from tests.services.test_document import upload

creator = test_document.creator  # the fixture: a creator with an assistant "Bees"

SECRET_LINE = "Worker bees secretly dance at 04:17 near hive ZQX-991."


def key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


SEG = file_crypto.SEGMENT


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 5])
def test_round_trip_at_segment_edges(
    settings_env: pytest.MonkeyPatch, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    assert file_crypto.write_encrypted(path, data) == file_crypto.keyring().current
    assert file_crypto.read_plain(path) == data
    assert len(path.read_bytes()) > size  # header and tags: it really is sealed


def test_development_generates_and_keeps_one_key(
    settings_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ring = file_crypto.keyring()
    key_file = get_settings().data_dir / file_crypto.KEY_FILE
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert "Generated an encryption key" in caplog.text
    assert file_crypto._development_keys(get_settings().data_dir) == ring  # read back, not remade


def test_production_refuses_to_start_without_keys(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("GPTSTUDIO_ENV", "production")
    settings_env.setenv("GPTSTUDIO_SECRET_KEY", "a-production-secret-of-some-length")
    with pytest.raises(ValueError, match="GPTSTUDIO_ENCRYPTION_KEYS is not set"):
        Settings()
    settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", key("k1"))
    assert Settings().is_production


@pytest.mark.parametrize(
    ("value", "message"),
    [("k1:notbase64!", "not valid base64"),
     ("k1:" + base64.b64encode(b"short").decode(), "5 bytes"),
     ("bad id:" + base64.b64encode(bytes(32)).decode(), "key id"),
     (key("a") + "," + key("a"), "given twice")],
)  # fmt: skip
def test_malformed_keys_say_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(file_crypto.InvalidKeys, match=message):
        file_crypto.parse_keys(value)


def test_upload_is_encrypted_on_disk_and_read_back(creator: tuple) -> None:
    cy, bees = creator
    data = (BEES_MD + "\n" + SECRET_LINE + "\n").encode()
    stored = upload(cy, bees, "bees.md", data)
    (row,) = _rows()
    on_disk = Path(row.storage_path).read_bytes()
    assert SECRET_LINE.encode() not in on_disk and b"Worker bees" not in on_disk
    assert row.encryption_key_id == file_crypto.keyring().current
    assert file_crypto.key_id_of(row.storage_path) == row.encryption_key_id
    # the parsed copy (the original's text) is encrypted too, and parsing went through
    copy = document.parsed_path(row.storage_path).read_bytes()
    assert b"secretly dance" not in copy and copy.startswith(file_crypto.MAGIC)
    assert document.list_documents(actor=cy, assistant_id=bees)[0].status == "parsed"
    # the owner opens the original: the plaintext, decrypted as sent
    source = document.cited_source(actor=cy, document_id=stored.id)
    assert b"".join(source.content()) == data


def test_tampered_file_and_unknown_key_fail_clearly(
    creator: tuple,
    settings_env: pytest.MonkeyPatch,
) -> None:
    cy, bees = creator
    stored = upload(cy, bees, "bees.md", BEES_MD.encode())
    (row,) = _rows()
    path = Path(row.storage_path)
    sealed = bytearray(path.read_bytes())
    sealed[-20] ^= 0x01
    path.write_bytes(bytes(sealed))
    source = document.cited_source(actor=cy, document_id=stored.id)
    with pytest.raises(file_crypto.StoredFileDamaged, match=r"bees\.md failed its integrity check"):
        b"".join(source.content())
    path.write_bytes(bytes(sealed[: len(file_crypto.MAGIC) + 40]))  # cut off
    with pytest.raises(file_crypto.StoredFileDamaged):
        file_crypto.read_plain(path)
    # a key id the settings do not hold (the file names "gone")
    file_crypto.write_encrypted(path, b"x")
    settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", key("other"))
    get_settings.cache_clear()
    with pytest.raises(file_crypto.KeyMissing, match=r"key 'dev-\d+', which is not in"):
        file_crypto.read_plain(path, name="bees.md")
    # the parse job records the reason on the document instead of failing silently (parsing
    # again, as a new column choice asks: the job only takes a document waiting for it)
    with session_scope() as session:
        waiting = session.get(Document, stored.id)
        assert waiting is not None
        waiting.status = "uploaded"
    parse_stored(stored.id)
    (row,) = _rows()
    assert row.status == "failed" and "not in GPTSTUDIO_ENCRYPTION_KEYS" in row.error


def test_plain_files_still_read_and_rotation_encrypts_everything(
    creator: tuple,
    settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cy, bees = creator
    first = upload(cy, bees, "bees.md", (BEES_MD + SECRET_LINE).encode())
    second = upload(cy, bees, "notes.md", b"# Notes\n\nPlain before encryption existed.\n")
    old_ring = file_crypto.keyring()
    # notes.md as a file stored before this release: plain on disk, no key id recorded
    legacy = Path(_rows()[1].storage_path)
    legacy.write_bytes(b"# Notes\n\nPlain before encryption existed.\n")
    _set_key_id(second.id, "")
    assert b"".join(document.cited_source(actor=cy, document_id=second.id).content()).startswith(
        b"# Notes"
    )
    # a new current key, the generated one kept after it
    old_line = (get_settings().data_dir / file_crypto.KEY_FILE).read_text().strip()
    new_key = key("k2")
    settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", f"{new_key},{old_line}")
    get_settings.cache_clear()
    assert rotate_keys.main([]) == 0
    assert "2 re-encrypted" in capsys.readouterr().out
    rows = _rows()
    assert [r.encryption_key_id for r in rows] == ["k2", "k2"]
    assert all(file_crypto.key_id_of(r.storage_path) == "k2" for r in rows)
    assert SECRET_LINE.encode() not in Path(rows[0].storage_path).read_bytes()
    assert b"Plain before" not in legacy.read_bytes()
    # the old key can now go: everything still reads, and parsing works again
    settings_env.setenv("GPTSTUDIO_ENCRYPTION_KEYS", new_key)
    get_settings.cache_clear()
    text = b"".join(document.cited_source(actor=cy, document_id=first.id).content())
    assert SECRET_LINE.encode() in text
    parsed = parsed_document(path=rows[0].storage_path, filename="bees.md",
                             document_id=first.id, columns=None)  # fmt: skip
    assert any("secretly dance" in s.text for s in parsed.sections)
    assert old_ring.current != "k2"
    assert rotate_keys.main([]) == 0  # again: nothing to do
    assert "0 re-encrypted, 2 already current" in capsys.readouterr().out


def _rows() -> list[Document]:
    from sqlmodel import col, select

    from gptstudio.db import session_scope

    with session_scope() as session:
        rows = session.exec(select(Document).order_by(col(Document.id))).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def _set_key_id(document_id: int, key_id: str) -> None:
    from gptstudio.db import session_scope

    with session_scope() as session:
        row = session.get(Document, document_id)
        assert row is not None
        row.encryption_key_id = key_id

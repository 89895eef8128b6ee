"""Open DOCX zip containers safely.

A DOCX is a zip. Before anything reads an entry, :func:`open_checked_zip` looks at the sizes the
archive declares and refuses containers that would expand past the configured total, or whose
large entries compress suspiciously well (zip bombs). Python's ``zipfile`` never returns more
than an entry's declared size, so checking the declared sizes bounds what reading can produce.
"""

from __future__ import annotations

import io
import zipfile

from gptstudio.curation.errors import CorruptFileError, UnsafeArchiveError

WORD_MAIN_PART = "word/document.xml"
# Entries smaller than this are never called bombs: small XML parts compress very well.
_RATIO_CHECK_MIN_BYTES = 1 << 20
MAX_ENTRIES = 10_000


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _check_sizes(
    archive: zipfile.ZipFile, *, max_uncompressed_bytes: int, max_compression_ratio: float
) -> None:
    entries = archive.infolist()
    if len(entries) > MAX_ENTRIES:
        raise UnsafeArchiveError(
            f"The file holds {len(entries)} zip entries; a Word document has a few dozen. "
            "Save it again from Word and upload the new file."
        )
    total = sum(entry.file_size for entry in entries)
    if total > max_uncompressed_bytes:
        raise UnsafeArchiveError(
            f"The document would expand to {_mib(total)}, over the {_mib(max_uncompressed_bytes)}"
            " limit; split it into smaller documents or remove embedded media."
        )
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size >= _RATIO_CHECK_MIN_BYTES and ratio > max_compression_ratio:
            raise UnsafeArchiveError(
                f"The part {entry.filename!r} expands {ratio:.0f}-fold, which real documents "
                "never do (this looks like a zip bomb); the file was not read."
            )


def open_checked_zip(
    *, data: bytes, max_uncompressed_bytes: int, max_compression_ratio: float
) -> zipfile.ZipFile:
    """Open ``data`` as a zip after checking its declared sizes, or raise a CurationError."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise CorruptFileError(
            "The file is a damaged or truncated zip/DOCX container; save it again from Word and "
            "upload the new file."
        ) from error
    _check_sizes(
        archive,
        max_uncompressed_bytes=max_uncompressed_bytes,
        max_compression_ratio=max_compression_ratio,
    )
    return archive


def is_word_document(*, archive: zipfile.ZipFile) -> bool:
    """Whether the zip holds the main part of a Word document."""
    return WORD_MAIN_PART in archive.namelist()

"""Zip containers are size-checked before any part is read; limits are validated."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import CorruptFileError, InvalidParameterError, UnsafeArchiveError
from gptstudio.curation.parsers.archive import is_word_document, open_checked_zip
from gptstudio.curation.parsers.limits import ParseLimits
from tests.curation.builders import make_docx, make_zip


def test_a_word_document_passes_and_is_recognised() -> None:
    archive = open_checked_zip(
        data=make_docx([("p", "Hi")]), max_uncompressed_bytes=10 << 20, max_compression_ratio=100
    )
    assert is_word_document(archive=archive)


def test_highly_compressible_large_parts_are_refused() -> None:
    data = make_zip({"word/document.xml": b"a" * (2 << 20)})
    with pytest.raises(UnsafeArchiveError, match="expands"):
        open_checked_zip(data=data, max_uncompressed_bytes=10 << 20, max_compression_ratio=100)


def test_small_parts_may_compress_well() -> None:
    data = make_zip({"word/styles.xml": b"<w:style/>" * 50_000})  # 500 kB, under 1 MiB
    open_checked_zip(data=data, max_uncompressed_bytes=10 << 20, max_compression_ratio=100)


def test_not_a_zip() -> None:
    with pytest.raises(CorruptFileError):
        open_checked_zip(
            data=b"PK\x03\x04broken", max_uncompressed_bytes=1, max_compression_ratio=1
        )


@pytest.mark.parametrize("field", ["max_bytes", "max_pages", "max_records"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(InvalidParameterError, match=field):
        ParseLimits(**{field: 0})

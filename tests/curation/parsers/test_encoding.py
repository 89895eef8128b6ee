"""Text decoding: byte-order marks, UTF-8, legacy code pages, and refusing binary data."""

from __future__ import annotations

import codecs

import pytest

from gptstudio.curation.errors import UndecodableTextError, UnsupportedFileError
from gptstudio.curation.parsers.encoding import control_ratio, decode_text

FRENCH = "Le pâtissier a préparé une crème brûlée très légère pour le dîner de fête."


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (codecs.BOM_UTF8 + FRENCH.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + FRENCH.encode("utf-16-le"), "utf-16"),
        (codecs.BOM_UTF16_BE + FRENCH.encode("utf-16-be"), "utf-16"),
        (FRENCH.encode("utf-8"), "utf-8"),
    ],
)
def test_unicode_with_and_without_marks(data: bytes, encoding: str) -> None:
    decoded = decode_text(data=data)
    assert decoded.text.lstrip("\ufeff") == FRENCH
    assert decoded.encoding == encoding


def test_latin1_text_decodes_to_the_same_letters() -> None:
    decoded = decode_text(data=FRENCH.encode("latin-1"))
    assert decoded.text == FRENCH
    assert decoded.encoding in {"cp1252", "latin_1", "iso8859_15"}


def test_random_bytes_are_not_text() -> None:
    junk = bytes((i * 7919) % 256 for i in range(4000))
    with pytest.raises((UnsupportedFileError, UndecodableTextError)):
        decode_text(data=junk)


def test_control_characters_in_valid_utf8_mean_binary() -> None:
    with pytest.raises(UnsupportedFileError, match="binary data"):
        decode_text(data=b"\x00\x01\x02abc" * 50)


def test_a_false_byte_order_mark_is_reported() -> None:
    with pytest.raises(UndecodableTextError, match="UTF-16"):
        decode_text(data=codecs.BOM_UTF16_LE + b"\x00\xd8")  # a lone surrogate


def test_control_ratio_ignores_tabs_and_line_breaks() -> None:
    assert control_ratio(text="a\tb\r\nc\f") == 0
    assert control_ratio(text="ab\x07\x08") == 0.5

"""Decode uploaded text: BOMs first, then strict UTF-8, then charset-normalizer.

charset-normalizer often ties between Western and Central European code pages on short texts;
among equally good candidates we prefer cp1252 (a superset of printable Latin-1), the common case
for Western documents. Decoded text that is mostly control characters is binary, not text.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import charset_normalizer

from gptstudio.curation.errors import UndecodableTextError, UnsupportedFileError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_PREFERRED = ("utf_8", "cp1252", "latin_1", "iso8859_15")
# C0 and C1 control characters except tab, line feed, form feed and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
MAX_CONTROL_RATIO = 0.01
_BINARY = (
    "The file is binary data, not text or a document we can read; upload a PDF, DOCX, HTML, "
    "Markdown, text, CSV or JSON file."
)


@dataclass(frozen=True)
class DecodedText:
    """Text and the encoding it was decoded from."""

    text: str
    encoding: str


def _decode_with_bom(data: bytes) -> DecodedText | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return DecodedText(data.decode(codec), codec)
            except UnicodeDecodeError as error:
                raise UndecodableTextError(
                    f"The file starts with a {codec.upper()} byte-order mark but is not valid "
                    f"{codec.upper()} (byte {error.start}); save it again as UTF-8."
                ) from error
    return None


def _guess_encoding(data: bytes) -> DecodedText:
    matches = list(charset_normalizer.from_bytes(data))
    if not matches and b"\x00" in data:
        raise UnsupportedFileError(_BINARY)
    if not matches:
        raise UndecodableTextError(
            "The text could not be decoded in any known encoding; save it as UTF-8 and upload it "
            "again."
        )

    def rank(match: charset_normalizer.CharsetMatch) -> tuple[float, float, int]:
        preference = _PREFERRED.index(match.encoding) if match.encoding in _PREFERRED else 99
        return (round(match.chaos, 3), -round(match.coherence, 3), preference)

    best = min(matches, key=rank)
    return DecodedText(str(best), best.encoding)


def control_ratio(*, text: str) -> float:
    """The share of characters that are control characters other than tab and line breaks."""
    if not text:
        return 0.0
    return sum(1 for _ in _CONTROL.finditer(text)) / len(text)


def decode_text(*, data: bytes) -> DecodedText:
    """Decode ``data`` as text or raise a :class:`CurationError` saying why it is not text."""
    decoded = _decode_with_bom(data)
    if decoded is None:
        try:
            decoded = DecodedText(data.decode("utf-8"), "utf-8")
        except UnicodeDecodeError:
            decoded = _guess_encoding(data)
    if control_ratio(text=decoded.text) > MAX_CONTROL_RATIO:
        raise UnsupportedFileError(_BINARY)
    return decoded

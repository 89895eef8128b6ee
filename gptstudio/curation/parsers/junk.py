"""Refuse text that is not prose before any work is spent on it.

A 20 MiB run of one letter used to be "parsed" and then cost curation half a minute. Two cheap
checks over the decoded text (both well under a second for the largest upload) catch such
files: most characters sitting in unbroken runs of a thousand or more (no words), or a text so
repetitive that zlib shrinks it a hundredfold (real prose shrinks 3-6x, tables and logs up to
about 20x).
"""

from __future__ import annotations

import re
import zlib

from gptstudio.curation.errors import UnsupportedFileError

_UNBROKEN = re.compile(r"\S{1000,}")
_MIN_CHARS = 32 * 1024
_SAMPLE_CHARS = 1024 * 1024
MAX_UNBROKEN_SHARE = 0.5
MAX_COMPRESSION_RATIO = 100.0


def refuse_junk(*, text: str) -> None:
    """Raise :class:`UnsupportedFileError` when ``text`` is long and holds no real words."""
    if len(text) < _MIN_CHARS:
        return
    unbroken = sum(match.end() - match.start() for match in _UNBROKEN.finditer(text))
    if unbroken > MAX_UNBROKEN_SHARE * len(text):
        raise UnsupportedFileError(
            "Most of the file is one unbroken run of characters without spaces (no words); it "
            "is not text to learn from. Check that it is the right file."
        )
    sample = text[:_SAMPLE_CHARS].encode("utf-8", "surrogatepass")
    if len(sample) / len(zlib.compress(sample, 1)) > MAX_COMPRESSION_RATIO:
        raise UnsupportedFileError(
            "The file repeats the same few characters over and over; it is not text to learn "
            "from. Check that it is the right file."
        )

"""Detect the dialect of a delimited table (CSV, TSV, semicolon- or pipe-separated).

Python's ``csv.Sniffer`` guesses from character frequencies per line, so it fails on real
exports: rows that leave trailing fields out, and quoted cells holding the delimiter or line
breaks. Here each candidate delimiter is tried by actually reading the first records with the
``csv`` module (quotes, doubled quotes and quoted line breaks included) and the candidate whose
records line up with the header wins. A row may have fewer fields than the header (trailing
fields left empty), never more. When no delimiter fits, :class:`NotATableError` says why.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

_DELIMITERS = (",", ";", "\t", "|")
_PROBE_CHARS = 256 * 1024
_PROBE_RECORDS = 200
_MAX_HEADER_CHARS = 64
_SENTENCE_BREAK = re.compile(r"[.!?]\s+\w")


class NotATableError(ValueError):
    """The text is not a delimited table with a header row; the message says why."""


@dataclass(frozen=True)
class _Fit:
    delimiter: str
    width: int
    full_rows: float
    """Share of data rows with every field."""


def _dialect(delimiter: str) -> type[csv.Dialect]:
    return type("DetectedDialect", (csv.excel,), {"delimiter": delimiter})


def _records(text: str, delimiter: str) -> list[list[str]]:
    sample = text[:_PROBE_CHARS]
    reader = csv.reader(io.StringIO(sample), _dialect(delimiter), strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
            if len(rows) > _PROBE_RECORDS:
                break
    except csv.Error as error:
        if len(sample) == len(text) or reader.line_num < sample.count("\n"):
            raise NotATableError(f"line {reader.line_num}: {error}") from error
    if len(text) > len(sample) and len(rows) <= _PROBE_RECORDS:
        rows = rows[:-1]  # the sample may end inside the last record
    return rows[: _PROBE_RECORDS + 1]


def _fit(text: str, delimiter: str) -> _Fit:
    rows = _records(text, delimiter)
    if not rows:
        raise NotATableError("it has no rows")
    header, data = [cell.strip() for cell in rows[0]], rows[1:]
    if len(header) < 2:
        raise NotATableError("the first row has a single field")
    named = header[1:] if not header[0] else header  # pandas leaves the index column unnamed
    if not all(named) or len(set(named)) != len(named):
        raise NotATableError("the first row is not a header (empty or repeated column names)")
    if max(map(len, header)) > _MAX_HEADER_CHARS or any(map(_SENTENCE_BREAK.search, header)):
        raise NotATableError("the first row is not a header (a column name is a whole sentence)")
    if not data:
        raise NotATableError("it has a header but no data rows")
    for number, row in enumerate(data, start=2):
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
            raise NotATableError(
                f"record {number} has {len(row)} fields but the header has {len(header)}"
            )
    if sum(len(row) > 1 for row in data) * 2 <= len(data):
        raise NotATableError("most rows have a single field")
    full = sum(len(row) >= len(header) for row in data) / len(data)
    return _Fit(delimiter, len(header), full)


def detect_dialect(*, text: str) -> type[csv.Dialect]:
    """The dialect of a table with a header row; raises :class:`NotATableError` otherwise.

    Among delimiters that fit, the one with the most complete rows wins, then the widest.
    """
    fits, problems = [], {}
    for delimiter in _DELIMITERS:
        try:
            fits.append(_fit(text, delimiter))
        except NotATableError as problem:
            problems[delimiter] = str(problem)
    if not fits:
        raise NotATableError(problems[","])
    best = max(fits, key=lambda fit: (fit.full_rows, fit.width))
    return _dialect(best.delimiter)

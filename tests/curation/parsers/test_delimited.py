"""Tables as exports write them: short rows, quoted delimiters and line breaks, any separator."""

from __future__ import annotations

import csv
import io

import pytest

from gptstudio.curation.documents import FileType
from gptstudio.curation.errors import CorruptFileError
from gptstudio.curation.parsers import parse_document
from gptstudio.curation.parsers.delimited import NotATableError, detect_dialect


def _export(rows: list[list[str]], delimiter: str = ",") -> str:
    """A table the way spreadsheets write it (minimal quoting), trailing empty fields dropped."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        while len(row) > 1 and row[-1] == "":
            row = row[:-1]
        writer.writerow(row)
    return out.getvalue()


PRODUCTS = [
    ["name", "price", "description", "notes"],
    ["Lime, garden", "4.99", "Raises soil pH.\nApply in autumn.", ""],
    ["Sulphur", "6.50", 'Lowers pH; the "acid" treatment.', "keep dry"],
    ["Compost", "3.00", "", ""],
    ["Bone meal", "5.25", "Slow phosphorus, for bulbs, roses and fruit trees.", ""],
]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_short_rows_and_quoted_delimiters_and_line_breaks(delimiter: str) -> None:
    text = _export(PRODUCTS, delimiter)
    assert detect_dialect(text=text).delimiter == delimiter


def test_a_real_csv_export_is_read_as_a_table() -> None:
    # Python's sniffer-based check refused it (rows of different widths) and it became text.
    data = _export(PRODUCTS).encode()
    document = parse_document(data=data, filename="products.csv")
    assert document.report.file_type == FileType.CSV
    assert document.report.columns == ("name", "price", "description", "notes")
    assert document.report.records == 4
    assert document.report.column_choice == {"text": "description"}
    texts = [section.text for section in document.sections]
    assert texts[0] == "Raises soil pH.\nApply in autumn."
    assert 'Lowers pH; the "acid" treatment.' in texts


def test_a_table_is_found_without_the_extension() -> None:
    document = parse_document(data=_export(PRODUCTS, ";").encode(), filename="export.txt")
    assert document.report.file_type == FileType.CSV


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Dear team,\nthe meeting moved to Friday.\nBest, Ann\n", "not a header"),
        ("a,b\n1,2\n3,4,5,6\n", "record 3 has 4 fields but the header has 2"),
        ('a,b\n"unclosed, 2\n3,4\n"x"y,5\n', "line"),
        ("just one column\nof words\nper line\n", "single field"),
    ],
)
def test_a_file_named_csv_that_is_not_a_table_says_why(text: str, reason: str) -> None:
    with pytest.raises(NotATableError, match=reason):
        detect_dialect(text=text)
    with pytest.raises(CorruptFileError, match="named as CSV but is not a table"):
        parse_document(data=text.encode(), filename="data.csv")

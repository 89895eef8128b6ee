"""Upload names: refused when they escape their folder or hide characters, else sanitised."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import UnsafeFilenameError
from gptstudio.curation.filenames import safe_filename


@pytest.mark.parametrize(
    "name",
    ["../secret.pdf", "a/../../b.txt", "..\\boot.ini", "/etc/passwd", "C:\\Windows\\x.docx"],
)
def test_paths_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafeFilenameError, match="outside its folder"):
        safe_filename(name=name)


@pytest.mark.parametrize("name", ["report\x00.pdf", "line\nbreak.txt", "bidi\u202etxt.exe"])
def test_control_and_invisible_characters_are_refused(name: str) -> None:
    with pytest.raises(UnsafeFilenameError, match="control or invisible"):
        safe_filename(name=name)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Q3 report: final?.pdf", "Q3 report_ final_.pdf"),
        ("  .hidden.md ", "hidden.md"),
        ("folder/notes.txt", "folder_notes.txt"),
        ("CON.txt", "_CON.txt"),
        ("Cafe\u0301.docx", "Café.docx"),
    ],
)
def test_names_are_sanitised(name: str, safe: str) -> None:
    assert safe_filename(name=name) == safe


def test_long_names_keep_their_extension() -> None:
    assert safe_filename(name="x" * 300 + ".pdf", max_length=50) == "x" * 46 + ".pdf"


@pytest.mark.parametrize("name", ["", "   ", "..."])
def test_names_with_nothing_left_are_refused(name: str) -> None:
    with pytest.raises(UnsafeFilenameError):
        safe_filename(name=name)

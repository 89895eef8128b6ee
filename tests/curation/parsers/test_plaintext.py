"""Markdown and text: heading paths, code fences, and form-feed pages."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import EmptyFileError
from gptstudio.curation.parsers.plaintext import parse_text

MARKDOWN = """Intro line.

# Soil
Soil text.

## pH
pH text.

```python
# not a heading
print("x")
```

# Water ##
Water text.
"""


def test_markdown_headings_nest() -> None:
    sections = parse_text(text=MARKDOWN).sections
    assert [s.heading_path for s in sections] == [(), ("Soil",), ("Soil", "pH"), ("Water",)]
    assert "# not a heading" in sections[2].text


def test_form_feeds_start_pages() -> None:
    parts = parse_text(text="first page\fsecond page")
    assert parts.pages == 2
    assert [(s.page, s.text) for s in parts.sections] == [(1, "first page"), (2, "second page")]


def test_whitespace_only_text_is_empty() -> None:
    with pytest.raises(EmptyFileError):
        parse_text(text=" \n\t\n")


SETEXT = """Project
=======

Intro paragraph.

Install
-------
Run the installer.

Some text above a rule

---

- a list item
---
Usage
=====
Call it.
"""


def test_setext_headings_are_headings() -> None:
    sections = parse_text(text=SETEXT).sections
    assert [s.heading_path for s in sections] == [("Project",), ("Project", "Install"), ("Usage",)]
    assert sections[0].text.strip() == "Intro paragraph."
    install = sections[1].text
    assert "Run the installer." in install and "Some text above a rule" in install
    assert "---" in install and "- a list item" in install  # a rule, and a list item's line


def test_an_underline_of_a_second_paragraph_line_is_text() -> None:
    sections = parse_text(text="first line\nsecond line\n---\nafter").sections
    assert [s.heading_path for s in sections] == [()]

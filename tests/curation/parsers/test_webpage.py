"""HTML main-text extraction keeps headings and drops page furniture."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import EmptyFileError
from gptstudio.curation.parsers.webpage import parse_html

ARTICLE = """<html><head><title>Guide</title></head><body>
<nav><a href="/">Home</a> | <a href="/shop">Shop our spring sale</a></nav>
<article><h1>Soil pH basics</h1>
<p>Soil pH is a measure of the acidity or alkalinity of soil. Most vegetables prefer a pH
between 6.0 and 7.0, which keeps nutrients available to roots.</p>
<h2>Raising pH</h2>
<p>Agricultural lime raises the pH of acidic soil over several months. Apply it in autumn so
that rain can work it into the ground before spring planting.</p></article>
<footer>Copyright 2024 Garden Co. All rights reserved.</footer></body></html>"""


def test_main_text_with_heading_paths() -> None:
    parts = parse_html(text=ARTICLE)
    paths = [section.heading_path for section in parts.sections]
    assert paths == [("Soil pH basics",), ("Soil pH basics", "Raising pH")]
    whole = "\n".join(section.text for section in parts.sections)
    assert "Agricultural lime raises the pH" in whole
    assert "spring sale" not in whole
    assert "Copyright" not in whole


def test_short_pages_are_kept() -> None:
    parts = parse_html(text="<html><body><div>Short note.</div></body></html>")
    assert parts.sections[0].text == "Short note."


def test_page_without_visible_text_is_empty() -> None:
    with pytest.raises(EmptyFileError, match="no visible text"):
        parse_html(text="<html><body><script>var a = 1;</script></body></html>")

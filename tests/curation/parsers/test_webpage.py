"""HTML main-text extraction keeps headings and drops page furniture."""

from __future__ import annotations

from pathlib import Path

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


DOCBOOK = """<?xml version="1.0" encoding="UTF-8"?>
<html><head><title>Chapter 3</title></head><body>
<div class="navheader"><table><tr><td><a href="ch02.html">Prev</a></td>
<td><a href="ch04.html">Next</a></td></tr></table></div>
<div class="chapter"><div class="titlepage"><div><div>
<h1 class="title"><a id="setup"/>Chapter 3. Tool Setups</h1></div></div></div>
<div class="toc"><p><b>Table of Contents</b></p><dl class="toc">
<dt><span class="section"><a href="#email">3.1. Email address</a></span></dt>
<dt><span class="section"><a href="#mc">3.2. mc</a></span></dt>
<dt><span class="section"><a href="#git">3.3. git</a></span></dt></dl></div>
<p>The <span class="strong"><strong>build-essential</strong></span> package must be installed.</p>
<div class="section"><div class="titlepage"><div><div>
<h2 class="title"><a id="email"/>3.1. Email address</h2></div></div></div>
<p>Set these variables:</p>
<div class="variablelist"><dl class="variablelist">
<dt><span class="term">DEBEMAIL</span></dt><dd><p>your e-mail address</p></dd>
<dt><span class="term">DEBFULLNAME</span></dt><dd><p>your full name</p></dd></dl></div>
<pre class="screen"># not a heading
export DEBEMAIL DEBFULLNAME</pre>
<ul><li>first point</li><li>second point<ol><li>nested step</li></ol></li></ul>
<table><tr><th>Tool</th><th>Use</th></tr><tr><td>mc</td><td>file manager</td></tr></table>
</div></div>
<div class="navfooter"><a href="index.html">Home</a></div></body></html>"""


def test_docbook_chapter_keeps_headings_definitions_lists_and_tables() -> None:
    parts = parse_html(text=DOCBOOK)
    paths = [section.heading_path for section in parts.sections]
    assert paths == [
        ("Chapter 3. Tool Setups",),
        ("Chapter 3. Tool Setups", "3.1. Email address"),
    ]
    body = parts.sections[1].text
    assert "DEBEMAIL\n: your e-mail address" in body
    assert "DEBFULLNAME\n: your full name" in body
    assert "- first point\n- second point\n  1. nested step" in body
    assert "| Tool | Use |" in body and "| mc | file manager |" in body
    assert "```\n# not a heading\nexport DEBEMAIL DEBFULLNAME\n```" in body
    whole = "\n".join(section.text for section in parts.sections)
    assert "Table of Contents" not in whole
    assert "Prev" not in whole and "Home" not in whole
    assert "build-essential package must be installed." in parts.sections[0].text


def test_real_docbook_appendix_keeps_its_structure() -> None:
    html = (Path(__file__).parent.parent / "data" / "debmake-doc-apa.en.html").read_text()
    parts = parse_html(text=html)
    paths = {section.heading_path for section in parts.sections}
    assert len(paths) >= 10
    assert ("Appendix A. debmake(1) manpage", "A.6. CAVEAT") in paths
    whole = "\n".join(section.text for section in parts.sections)
    assert "-h, --help\n: show this help message and exit." in whole
    assert "Table of Contents" not in whole

"""Extract the main text of an HTML page with trafilatura, keeping headings as section paths.

trafilatura drops navigation, footers and other boilerplate; its Markdown output keeps headings,
which :func:`plaintext.split_markdown` turns into heading paths. Pages where it finds no main
text fall back to its whole-page text with a note.
"""

from __future__ import annotations

import trafilatura

from gptstudio.curation.errors import EmptyFileError
from gptstudio.curation.parsers.parts import ParsedParts
from gptstudio.curation.parsers.plaintext import split_markdown


def parse_html(*, text: str) -> ParsedParts:
    """Sections of the main content of an HTML page."""
    parts = ParsedParts()
    main = trafilatura.extract(
        text, output_format="markdown", include_formatting=True, include_tables=True
    )
    if not main or not main.strip():
        main = trafilatura.html2txt(text)
        parts.notes.append("No main article was found, so all visible text of the page was kept.")
    else:
        parts.notes.append("Navigation, footers and other page furniture were removed.")
    parts.sections = split_markdown(text=main or "")
    if not parts.sections:
        raise EmptyFileError("The web page has no visible text; check that it is the right file.")
    return parts

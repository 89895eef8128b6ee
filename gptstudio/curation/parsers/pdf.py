"""Read PDF text page by page with PDFium (pypdfium2), keeping 1-based page numbers.

PDFium was chosen by measurement (``bench/curation_quality.py``): on LaTeX-made manuals, which
place words by position and draw no space glyphs, pypdf ran 30-60% of the letters together
("Thedebsigncommand,includedin...") at about 25 pages/s, while PDFium infers the spaces (0% run
together on the same pages) at several hundred pages/s. pdfminer.six reads as well but about 20
times slower; pdfplumber joins words like pypdf.

Password-protected files are refused unless they open with an empty password (owner-only
protection). Pages that fail or hold no text (scans) are noted and skipped; a file with no text
on any page is refused with a hint to run OCR.
"""

from __future__ import annotations

import re
import threading

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from gptstudio.curation.documents import Section
from gptstudio.curation.errors import CorruptFileError, EmptyFileError, EncryptedFileError
from gptstudio.curation.parsers.limits import ParseLimits
from gptstudio.curation.parsers.parts import ParsedParts

# PDFium is not thread-safe; a worker may run several parse jobs in threads.
_PDFIUM_LOCK = threading.Lock()
# PDFium marks a hyphen it removed at a line end with U+0002 and ends lines with CR LF.
_SOFT_HYPHEN_BREAK = re.compile("\x02\r?\n?")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
# Tokens with these characters are code, paths, URLs or addresses, where long runs are normal.
_CODE_LIKE = re.compile(r"[_/\\$@<>{}()=\[\]#*|~`]")
RUN_TOGETHER_LETTERS = 25
"""A run of this many letters without a space is words run together (German compounds stop
well short of it in running text)."""
NOTE_RUN_TOGETHER = 0.05
"""Above this share of run-together letters the report warns the creator."""


def run_together_share(*, text: str) -> float:
    """The share of letters in ``text`` that sit in runs of words without spaces between them.

    A letter run of :data:`RUN_TOGETHER_LETTERS` or more in a token that is not code, a path or
    a URL counts as run together ("Thedebsigncommandincludedinthedevscripts").
    """
    letters = joined = 0
    for token in text.split():
        runs = [len(run) for run in _LETTER_RUN.findall(token)]
        letters += sum(runs)
        if not _CODE_LIKE.search(token):
            joined += sum(run for run in runs if run >= RUN_TOGETHER_LETTERS)
    return joined / letters if letters else 0.0


def _open(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedFileError(
                "The PDF is password-protected; remove the password (print to PDF or use "
                "'Save without password') and upload it again."
            ) from error
        raise CorruptFileError(
            "The PDF is damaged or truncated and cannot be read; export it again from the "
            "program that made it."
        ) from error


def _page_text(document: pdfium.PdfDocument, index: int) -> str | None:
    try:
        page = document[index]
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
            page.close()
    except pdfium.PdfiumError:
        return None
    return _SOFT_HYPHEN_BREAK.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def parse_pdf(*, data: bytes, limits: ParseLimits) -> ParsedParts:
    """Sections, one per page with text, from PDF bytes."""
    with _PDFIUM_LOCK:
        document = _open(data)
        try:
            return _read_pages(document, limits)
        finally:
            document.close()


def _read_pages(document: pdfium.PdfDocument, limits: ParseLimits) -> ParsedParts:
    pages = len(document)
    parts = ParsedParts(pages=pages)
    if pages > limits.max_pages:
        parts.notes.append(f"Only the first {limits.max_pages} of {pages} pages were read.")
    unreadable, blank = [], []
    for index in range(min(pages, limits.max_pages)):
        text = _page_text(document, index)
        if text is None:
            unreadable.append(index + 1)
        elif not text.strip():
            blank.append(index + 1)
        else:
            parts.sections.append(Section(text=text, page=index + 1))
    _note_pages(parts, unreadable=unreadable, blank=blank, pages=pages)
    joined = run_together_share(text="\n".join(section.text for section in parts.sections))
    if joined > NOTE_RUN_TOGETHER:
        parts.notes.append(
            f"{joined:.0%} of the letters sit in words run together without spaces; the PDF "
            "may place its words oddly. If the text looks wrong, upload the original document."
        )
    return parts


def _note_pages(parts: ParsedParts, *, unreadable: list[int], blank: list[int], pages: int) -> None:
    if unreadable:
        parts.notes.append(f"Pages that could not be read: {_page_list(unreadable)}.")
    if blank:
        parts.notes.append(
            f"Pages without extractable text (scanned images?): {_page_list(blank)}."
        )
    if not parts.sections and ((unreadable and not blank) or pages == 0):
        raise CorruptFileError(
            "No page of the PDF could be read; export it again from the program that made it."
        )
    if not parts.sections:
        raise EmptyFileError(
            "The PDF has no extractable text (it may be a scan); run OCR on it or upload the "
            "original document."
        )


def _page_list(pages: list[int]) -> str:
    shown = ", ".join(str(page) for page in pages[:20])
    return shown + (f" and {len(pages) - 20} more" if len(pages) > 20 else "")

"""Read the main text of an HTML page with its structure: headings, lists, definitions, tables.

The page is parsed with lxml and walked once. Page furniture goes first: scripts and styles,
``nav``/``aside``/forms, site headers and footers outside the article, elements whose class, id
or role names navigation (DocBook's ``navheader``/``toc``, Sphinx's sidebar, breadcrumbs, menus),
and link lists (a table of contents is a list of links). The rest becomes Markdown: ``h1``-``h6``
as headings (so sections carry heading paths), ``ul``/``ol`` items as ``-`` lines, ``dl`` terms
and definitions as ``term`` / ``: definition`` lines, tables as ``|`` rows, ``pre`` as fenced
code. :func:`plaintext.split_markdown` then cuts it into sections under their headings.

trafilatura, used before, dropped DocBook's headings (they hold an anchor) and definition lists
and kept "Table of Contents"; a structural walk keeps what the author marked up.
"""

from __future__ import annotations

import re

import lxml.html
from lxml.etree import LxmlError, ParserError, _Element

from gptstudio.curation.errors import CorruptFileError, EmptyFileError
from gptstudio.curation.parsers.parts import ParsedParts
from gptstudio.curation.parsers.plaintext import split_markdown

_DROPPED_TAGS = {
    "script", "style", "noscript", "template", "nav", "aside", "form", "iframe", "svg",
    "button", "select", "textarea", "object", "embed", "canvas", "head", "menu",
}  # fmt: skip
_FURNITURE = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navheader|navfooter|navigation|toc|breadcrumbs?|sidebar|"
    r"sphinxsidebar|menu|banner|cookies?|skip-link|pagination|headerlink|share|social)(?:$|[\s_-])",
    re.IGNORECASE,
)
_FURNITURE_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary", "menu"}
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_LISTS = {"ul", "ol"}
_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "footer", "blockquote", "pre", "table",
    "dl", "ul", "ol", "li", "dt", "dd", "figure", "figcaption", "address", "details", "summary",
    "hr", "center", "body", "fieldset", *_HEADINGS,
}  # fmt: skip
_SPACE = re.compile(r"\s+")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_LINK_LIST_SHARE = 0.8


def _classes(element: _Element) -> str:
    return f"{element.get('class', '')} {element.get('id', '')}"


def _inside(element: _Element, tags: set[str]) -> bool:
    return any(ancestor.tag in tags for ancestor in element.iterancestors())


def _is_furniture(element: _Element) -> bool:
    tag = element.tag
    if not isinstance(tag, str) or tag in _DROPPED_TAGS:
        return True
    if tag in {"header", "footer"} and not _inside(element, {"article", "main"}):
        return True
    if element.get("role", "").lower() in _FURNITURE_ROLES or element.get("hidden") is not None:
        return True
    if _FURNITURE.search(_classes(element)):
        return True
    return tag in {*_LISTS, "dl"} and _is_link_list(element)


def _is_link_list(element: _Element) -> bool:
    """A list whose text is nearly all links: a table of contents or a menu."""
    items = [child for child in element if child.tag in {"li", "dt", "dd"}]
    text = _flat(element.text_content())
    if len(items) < 3 or not text:
        return False
    linked = sum(len(_flat(link.text_content())) for link in element.iter("a"))
    return linked >= _LINK_LIST_SHARE * len(text)


def _remove_furniture(root: _Element) -> int:
    furniture = [element for element in root.iter() if _is_furniture(element)]
    removed = 0
    for element in furniture:
        parent = element.getparent()
        if parent is not None and not _inside_removed(element, furniture):
            element.drop_tree()
            removed += 1
    return removed


def _inside_removed(element: _Element, removed: list[_Element]) -> bool:
    ancestors = set(element.iterancestors())
    return any(other in ancestors for other in removed)


def _flat(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _inline(element: _Element) -> str:
    """The text of an inline run, with ``<br>`` kept as a line break."""
    pieces = [element.text or ""]
    for child in element:
        if child.tag == "br":
            pieces.append("\n")
        elif isinstance(child.tag, str):
            pieces.append(_inline(child))
        pieces.append(child.tail or "")
    return "".join(pieces)


def _lines(text: str) -> str:
    return "\n".join(line for line in (_flat(part) for part in text.split("\n")) if line)


class _Renderer:
    """Turns an element tree into Markdown blocks."""

    def __init__(self) -> None:
        self.blocks: list[str] = []

    def render(self, element: _Element) -> None:
        tag = element.tag
        if tag in _HEADINGS:
            self._add("#" * _HEADINGS[tag] + " " + _flat(element.text_content()))
        elif tag == "pre":
            self._add("```\n" + element.text_content().strip("\n") + "\n```")
        elif tag in _LISTS:
            self._list(element)
        elif tag == "dl":
            self._definitions(element)
        elif tag == "table":
            self._table(element)
        elif tag == "blockquote":
            inner = _Renderer()
            inner.container(element)
            self._add("\n".join(f"> {line}" for line in "\n\n".join(inner.blocks).split("\n")))
        else:
            self.container(element)

    def container(self, element: _Element) -> None:
        """Blocks of an element that mixes inline text with block children."""
        run = [element.text or ""]
        for child in element:
            if isinstance(child.tag, str) and child.tag in _BLOCKS:
                self._add(_lines("".join(run)))
                run = []
                self.render(child)
            elif child.tag == "br":
                run.append("\n")
            elif isinstance(child.tag, str):
                run.append(_inline(child))
            run.append(child.tail or "")
        self._add(_lines("".join(run)))

    def _add(self, block: str) -> None:
        if block.strip(" #>\n-|:"):
            self.blocks.append(block)

    def _list(self, element: _Element) -> None:
        ordered = element.tag == "ol"
        lines = []
        for number, item in enumerate((c for c in element if c.tag == "li"), start=1):
            nested = _Renderer()
            nested.container(item)
            marker = f"{number}." if ordered else "-"
            lines.append(f"{marker} " + "\n".join(nested.blocks).replace("\n", "\n  "))
        self._add("\n".join(lines))

    def _definitions(self, element: _Element) -> None:
        lines: list[str] = []
        for child in element:
            inner = _Renderer()
            inner.container(child)
            text = " ".join(inner.blocks).replace("\n", " ")
            if child.tag == "dt" and text:
                lines.append(("\n" if lines else "") + text)
            elif child.tag == "dd" and text:
                lines.append(f": {text}")
        self._add("\n".join(lines))

    def _table(self, element: _Element) -> None:
        rows = []
        for row in element.iter("tr"):
            cells = [
                _flat(cell.text_content()).replace("|", "\\|")
                for cell in row
                if cell.tag in {"td", "th"}
            ]
            if any(cells):
                rows.append("| " + " | ".join(cells) + " |")
                if len(rows) == 1:
                    rows.append("|" + "---|" * len(cells))
        self._add("\n".join(rows))


def _main_root(document: _Element) -> _Element:
    for query in ("//main", "//*[@role='main']", "//article"):
        found = document.xpath(query)
        if len(found) == 1:
            return found[0]
    body = document.find("body")
    return body if body is not None else document


def html_to_markdown(*, text: str) -> tuple[str, int]:
    """The page's main content as Markdown, and how many furniture elements were removed."""
    try:
        document = lxml.html.document_fromstring(_XML_DECLARATION.sub("", text, count=1))
    except (ParserError, LxmlError, ValueError) as error:
        raise CorruptFileError(
            "The web page could not be read as HTML; save it again from the browser."
        ) from error
    removed = _remove_furniture(document)
    renderer = _Renderer()
    renderer.render(_main_root(document))
    return "\n\n".join(renderer.blocks), removed


def parse_html(*, text: str) -> ParsedParts:
    """Sections of the main content of an HTML page, under their heading paths."""
    markdown, removed = html_to_markdown(text=text)
    parts = ParsedParts(sections=split_markdown(text=markdown))
    if not parts.sections:
        raise EmptyFileError("The web page has no visible text; check that it is the right file.")
    if removed:
        parts.notes.append("Navigation, footers and other page furniture were removed.")
    return parts

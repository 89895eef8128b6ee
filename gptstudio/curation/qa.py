"""Turn documents into question/answer examples, each keeping its source span.

Rule-based, with no model, in order of trust:

- explicit pairs, taken as written: ``Q:``/``A:`` and ``Question:``/``Answer:`` markers, a line
  that asks a question followed by its answer (FAQ pages; ``dt``/``dd`` and ``<summary>`` as the
  HTML parser renders them), definition lists (``Term`` then ``: definition``), and headings
  that are questions, answered by their section;
- definitions ("X is a Y" -> "What is X?"), answered by the whole sentence;
- section headings as questions ("What should I know about X?", answered by the section's first
  chunk, cut at its last sentence end);
- cloze sentences (a technical term blanked out), off by default: they teach little and are
  easily wrong.

Sentences are read across hard line breaks (text from PDFs and man pages wraps mid-sentence) and
never start mid-sentence; list bullets and hyphenation at line ends are removed from questions;
placeholders (``[EMAIL]``, ``<user>``, ``{name}``) are never blanked. Rules run once per
document over the text of the chunks that were kept, so a sentence in the overlap of two chunks
gives one example, and every example id is unique. When a chat model is configured, a
:class:`QAGenerator` can add model-written pairs per chunk; this module only defines the hook and
checks what comes back.
"""

from __future__ import annotations

import bisect
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from gptstudio.curation.chunking import Chunk
from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.examples import (
    Example,
    ExampleKind,
    Provenance,
    make_example,
    question_answer,
)

_DEFINITION = re.compile(
    r"^(?P<article>(?:An?|The)\s+)?(?P<term>[^\s,;:()]+(?:\s+[^\s,;:()]+){0,4}?)\s+"
    r"(?P<verb>is|are|refers to|means)\s+"
    r"(?P<rest>(?:an?|the|one|any|defined as|used)\b.{8,})$",
    re.DOTALL,
)
_PRONOUNS = frozenset(
    {"it", "this", "that", "there", "these", "those", "he", "she", "they", "we", "you", "i"}
    | {"what", "which", "who", "here", "such", "each", "one", "all", "some"}
    # A sentence that opens with a conjunction or preposition defines nothing ("Though this
    # is ...", "In general its operation is ...").
    | {"though", "although", "if", "when", "while", "because", "since", "as", "so", "but"}
    | {"and", "or", "in", "on", "at", "by", "with", "from", "to", "for", "of", "after"}
    | {"before", "then", "thus", "also", "its", "their", "his", "her", "our", "my", "your"}
)
_QUESTIONS = {
    "is": "What is {term}?",
    "are": "What are {term}?",
    "refers to": "What does {term} refer to?",
    "means": "What does {term} mean?",
}
_TERM = re.compile(r"\w[\w-]*\w|\w")
BLANK = "____"
_MIN_CLOZE_WORDS = 6
_MAX_ANSWER_CHARS = 2000
_MAX_QUESTION_WORDS = 30

_BULLET = re.compile(r"^[ \t]*(?:[-*+•▪◦‣·–]|\d{1,3}[.)])[ \t]+")
_HEADING_MARK = re.compile(r"^ {0,3}#{1,6}[ \t]+")
_CODE_SYMBOLS = frozenset("{}[]()<>;|\\/$=#*&^~`'\"")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[A-Z]\.(?:\d+\.?)*|[IVX]+\.)[ \t]+(?=\S)")
_EMPHASIS = re.compile(r"^(?:\*\*|__|\*|_)(?P<inner>.+?)(?:\*\*|__|\*|_)$")
_Q_MARK = re.compile(
    r"^[ \t]*(?:[-*+•][ \t]+)?(?:\*\*|__)?[ \t]*(?:Q|(?i:question|frage|pregunta))"
    r"(?:[ \t]*\d{1,3})?[ \t]*[:.)](?:[ \t]*(?:\*\*|__))?[ \t]*"
)
_A_MARK = re.compile(
    r"^[ \t]*(?:[-*+•][ \t]+)?(?:\*\*|__)?[ \t]*(?:A|(?i:answer|antwort|respuesta))"
    r"(?:[ \t]*\d{1,3})?[ \t]*[:.)](?:[ \t]*(?:\*\*|__))?[ \t]*"
)
_DEFINITION_LINE = re.compile(r"^ {0,3}:[ \t]+")
_SECTION_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)+\.?(?=\s)")
_UNDERLINE = re.compile(r"^[ \t]*(?:={3,}|-{3,})[ \t]*$")
_SENTENCE_END = re.compile(r"[.!?][\"'’”)\]]*(?=\s+[\"'‘“(\[`]?[A-Z0-9]|\s*$)")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "dr", "mr", "mrs", "ms", "fig", "no"})
_PLACEHOLDER = re.compile(
    r"\[[^\[\]\n]{1,40}\]|<[^<>\n]{1,40}>|\{[^{}\n]{1,40}\}|\$\{?\w+\}?|%\w+%|\b[A-Z]{2,}(?:_[A-Z]+)*\b"
)
_SHORT_WORDS = frozenset(
    re.findall(
        r"\w+",
        "a an as at be by do go he if in is it me my no of on or so to up us we am pm vs ok id "
        "ui os io db ip zu la le de du et en un il es da im um ob wo el lo",
    )
)
_HYPHENATION = re.compile(r"(?<=[a-zäöüß])-[ \t]*\n[ \t]*(?=[a-zäöüß])")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class QAPair:
    """A question and answer; the optional span is the supporting passage within the text."""

    question: str
    answer: str
    char_start: int | None = None
    char_end: int | None = None


class QAGenerator(Protocol):
    """Writes question/answer pairs for a chunk, e.g. by prompting a chat model."""

    def __call__(self, *, chunk: Chunk, max_pairs: int) -> Sequence[QAPair]:
        """At most ``max_pairs`` pairs grounded in ``chunk.text``."""
        ...


@dataclass(frozen=True)
class SynthesisOptions:
    """Which rules run, and limits per chunk."""

    explicit: bool = True
    """Question/answer structure already in the text, taken as written."""
    definitions: bool = True
    headings: bool = True
    cloze: bool = False
    """Fill-in-the-blank sentences; off by default (few are worth training on)."""
    max_cloze_per_chunk: int = 1
    max_generated_per_chunk: int = 3
    system_prompt: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class SynthesisResult:
    """The examples, how many of each kind, and generated pairs that were rejected."""

    examples: tuple[Example, ...]
    counts: dict[ExampleKind, int]
    rejected_generated: int


# --- text helpers ---------------------------------------------------------------------------


def _is_structural(line: str) -> bool:
    """Lines that start a new unit instead of continuing a wrapped one."""
    return bool(
        _BULLET.match(line)
        or _HEADING_MARK.match(line)
        or line.lstrip().startswith("|")
        or _DEFINITION_LINE.match(line)
    )


def flow(text: str) -> str:
    """``text`` as it reads: wrapped lines joined, line-end hyphenation undone, spaces collapsed;
    paragraphs stay apart, and list items and lines of code stay on their own lines."""
    text = _HYPHENATION.sub("", text.replace("\xad", ""))
    paragraphs = []
    for paragraph in _PARAGRAPHS.split(text):
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if not line.strip():
                continue
            code = _is_code(line) or (bool(lines) and _is_code(lines[-1]))
            if lines and not _is_structural(line) and not code:
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip())
        if lines:
            paragraphs.append("\n".join(_SPACES.sub(" ", line) for line in lines))
    return "\n\n".join(paragraphs)


def _plain_line(line: str) -> str:
    """A line without heading marks, bullet, numbering or emphasis around it."""
    line = _HEADING_MARK.sub("", _BULLET.sub("", line)).strip()
    match = _EMPHASIS.match(line)
    return (match["inner"] if match else line).strip()


def clean_question(text: str) -> str:
    """A question as one line: no bullets, numbering, emphasis or hyphenation breaks."""
    text = flow(text).replace("\n", " ")
    previous = None
    while text != previous:  # "3.5. • Tool setups": numbering and bullets in any order
        previous, text = text, _NUMBERING.sub("", _plain_line(text)).strip()
    return text.rstrip("*_ ").strip()


def _has_broken_word(text: str) -> bool:
    """A lowercase fragment of one or two letters that is no word ("ar gument")."""
    return any(
        len(token) <= 2 and token.isalpha() and token.islower() and token not in _SHORT_WORDS
        for token in re.findall(r"\w+(?:['’]\w+)*", text)
    )


def _is_code(line: str) -> bool:
    """A line of a command or program rather than prose: a shell prompt, an indented comment,
    or mostly symbols."""
    stripped = line.strip()
    if not stripped:
        return False
    if line[:1] in " \t" and stripped.startswith(("$ ", "# ", "#!", "% ", ">>> ")):
        return True
    visible = [character for character in stripped if not character.isspace()]
    symbols = sum(character in _CODE_SYMBOLS for character in visible)
    return symbols * 5 > len(visible)


def _units(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of paragraphs and list items of ``text``: wrapped lines belong together;
    fenced code and lines of code are left out."""
    start: int | None = None
    end = 0
    position = 0
    fenced = False
    for line in text.split("\n"):
        line_end = position + len(line)
        if _FENCE.match(line):
            fenced = not fenced
            line = ""
        if _UNDERLINE.match(line) or fenced or _is_code(line):
            line = ""
        if not line.strip() or _is_structural(line):
            if start is not None:
                yield start, end
            start = None
        if line.strip():
            if start is None:
                marker = _BULLET.match(line) or _HEADING_MARK.match(line)
                marker = marker or _DEFINITION_LINE.match(line)
                start = position + (marker.end() if marker else len(line) - len(line.lstrip()))
            end = position + len(line.rstrip())
        position = line_end + 1
    if start is not None:
        yield start, end


def _ends_sentence(text: str, position: int) -> bool:
    before = re.search(r"(\w+(?:\.\w+)*)\W*$", text[max(0, position - 40) : position])
    if before is None:
        return True
    word = before.group(1).lower()
    return word not in _ABBREVIATIONS and not (len(word) == 1 and word.isalpha())


def sentences(*, text: str) -> list[tuple[int, int]]:
    """(start, end) of each whole sentence of ``text``, read across hard line breaks.

    A sentence ends at ``.``, ``!`` or ``?`` before a capital, or at the end of its paragraph or
    list item; one that starts in lowercase continues something before it and is left out."""
    spans = []
    for start, end in _units(text):
        begin = start
        for match in _SENTENCE_END.finditer(text, start, end):
            if _ends_sentence(text, match.start()):
                spans.append((begin, match.end()))
                begin = match.end()
                while begin < end and text[begin].isspace():
                    begin += 1
        if begin < end:
            spans.append((begin, end))
    return [(s, e) for s, e in spans if text[s:e].strip() and not text[s].islower()]


def _cut_at_sentence(text: str, start: int, end: int, limit: int) -> int | None:
    """The end of the answer ``text[start:end]``: itself when short enough, else its last
    sentence end within ``limit`` characters (``None`` when there is none)."""
    if end - start <= limit:
        return end
    cut = None
    for match in _SENTENCE_END.finditer(text, start, start + limit):
        if _ends_sentence(text, match.start()):
            cut = match.end()
    return cut


def _last_sentence_end(text: str) -> int:
    """Where the last whole sentence of ``text`` ends (its length when none ends inside)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if _ends_sentence(text, m.start())]
    last = ends[-1] if ends else len(text)
    return last if text[last:].strip() == "" or ends else len(text)


# --- explicit question/answer structure -----------------------------------------------------


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    text: str

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def _lines(text: str) -> list[_Line]:
    lines, position = [], 0
    for line in text.split("\n"):
        lines.append(_Line(position, position + len(line), line))
        position += len(line) + 1
    return lines


def _asks(line: str) -> bool:
    """A line that is a question on its own (a FAQ entry, a ``dt``, a ``summary``)."""
    if _Q_MARK.match(line) or _A_MARK.match(line):
        return False
    plain = clean_question(line)
    words = plain.split()
    return (
        plain.endswith("?")
        and 2 <= len(words) <= _MAX_QUESTION_WORDS
        and (plain[0].isupper() or plain[0].isdigit() or plain[0] in "¿\"'“`")
    )


def _opens_entry(lines: Sequence[_Line], index: int) -> bool:
    """A question line that starts its block (or its list item), so it is no wrapped line."""
    line = lines[index]
    if not _asks(line.text):
        return False
    return index == 0 or lines[index - 1].blank or bool(_BULLET.match(line.text))


def _is_setext_heading(lines: Sequence[_Line], index: int) -> bool:
    """A line underlined with ``===`` or ``---`` (or that underline itself)."""
    if _UNDERLINE.match(lines[index].text):
        return True
    following = lines[index + 1] if index + 1 < len(lines) else None
    return (
        not lines[index].blank and following is not None and bool(_UNDERLINE.match(following.text))
    )


def _stops_answer(lines: Sequence[_Line], index: int) -> bool:
    line = lines[index].text
    if _Q_MARK.match(line) or _HEADING_MARK.match(line) or _is_setext_heading(lines, index):
        return True
    return _opens_entry(lines, index)


def _next_text(lines: Sequence[_Line], index: int) -> _Line | None:
    while index < len(lines) and lines[index].blank:
        index += 1
    return lines[index] if index < len(lines) else None


def _answer_end(lines: Sequence[_Line], first: int, *, one_item: bool, one_block: bool) -> int:
    """Index after the last line of an answer that starts at line ``first``: at the next
    question or heading; with ``one_item`` at the next list item; with ``one_block`` at a blank
    line, unless an indented paragraph or a list that belongs to the answer follows."""
    index = first
    while index < len(lines):
        line = lines[index]
        if index > first and _stops_answer(lines, index):
            break
        if one_item and index > first and (line.blank or _BULLET.match(line.text)):
            break
        if one_block and line.blank:
            following = _next_text(lines, index)
            indented = following is not None and following.text[:1] in " \t"
            announced = lines[index - 1].text.rstrip().endswith(":")  # "Do this:" then a list
            listed = following is not None and announced and _BULLET.match(following.text)
            if following is None or not (indented or listed):
                break
        index += 1
    while index > first and lines[index - 1].blank:
        index -= 1
    return index


def _pair(text: str, question: str, q_start: int, a_start: int, a_end: int) -> QAPair | None:
    end = _cut_at_sentence(text, a_start, a_end, _MAX_ANSWER_CHARS)
    answer = flow(text[a_start:end]) if end is not None else ""
    question = clean_question(question)
    if not question or len(answer.split()) < 2 or answer.rstrip("*_ ").endswith("?"):
        return None
    if len(_SECTION_NUMBER.findall(answer)) * 12 >= max(len(answer.split()), 36):
        return None  # a table of contents under a question, not its answer
    return QAPair(question, answer, q_start, end)


def _marked_pairs(text: str, lines: Sequence[_Line], index: int) -> tuple[list[QAPair], int]:
    """``Q:``/``A:`` pairs starting at line ``index``, and the line after them. Questions asked
    one after another before an ``A:`` share that answer (as FAQ files write it)."""
    questions: list[tuple[int, list[str]]] = []
    cursor = index
    while cursor < len(lines) and not _A_MARK.match(lines[cursor].text):
        line = lines[cursor].text
        mark = _Q_MARK.match(line)
        if mark:
            questions.append((lines[cursor].start, [line[mark.end() :]]))
        elif _HEADING_MARK.match(line) or _is_setext_heading(lines, cursor):
            return [], cursor
        elif not lines[cursor].blank:
            questions[-1][1].append(line)
        cursor += 1
    if cursor == len(lines):
        return [], cursor
    answer_mark = _A_MARK.match(lines[cursor].text)
    assert answer_mark is not None
    a_start = lines[cursor].start + answer_mark.end()
    stop = _answer_end(lines, cursor, one_item=False, one_block=True)
    pairs = [
        _pair(text, "\n".join(parts), start, a_start, lines[stop - 1].end)
        for start, parts in questions
    ]
    return [pair for pair in pairs if pair is not None], stop


def _question_line_pair(text: str, lines: Sequence[_Line], index: int) -> tuple[QAPair | None, int]:
    """A question line and the answer below it (the next list item, or the next paragraphs)."""
    line = lines[index]
    one_item = bool(_BULLET.match(line.text))
    first = index + 1
    if first < len(lines) and _UNDERLINE.match(lines[first].text):
        first += 1  # a setext heading that asks a question
    while first < len(lines) and lines[first].blank:
        first += 1
    if first >= len(lines) or _stops_answer(lines, first):
        return None, first
    stop = _answer_end(lines, first, one_item=one_item, one_block=False)
    marker = _BULLET.match(lines[first].text)
    a_start = lines[first].start + (marker.end() if marker else 0)
    return _pair(text, line.text, line.start, a_start, lines[stop - 1].end), stop


def _definition_list_pair(
    text: str, lines: Sequence[_Line], index: int
) -> tuple[QAPair | None, int]:
    """``Term`` followed by ``: definition`` (Markdown definition lists, rendered ``dt``/``dd``)."""
    term = _plain_line(lines[index].text)
    mark = _DEFINITION_LINE.match(lines[index + 1].text)
    assert mark is not None
    stop = index + 2
    while stop < len(lines) and not lines[stop].blank and lines[stop].text[:1] in " \t":
        stop += 1
    question = term if term.endswith("?") else f"What is {term}?"
    a_start = lines[index + 1].start + mark.end()
    return _pair(text, question, lines[index].start, a_start, lines[stop - 1].end), stop


def explicit_pairs(*, text: str) -> list[QAPair]:
    """Question/answer pairs written as such in ``text``, with spans from question to answer."""
    lines = _lines(text)
    pairs: list[QAPair] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        pair: QAPair | None = None
        after = index + 1
        if _Q_MARK.match(line.text):
            marked, after = _marked_pairs(text, lines, index)
            pairs.extend(marked)
        elif _opens_entry(lines, index):
            pair, after = _question_line_pair(text, lines, index)
        elif (
            not line.blank
            and line.text[:1] not in " \t"  # a term, not a line of indented code
            and len(line.text.split()) <= 10
            and index + 1 < len(lines)
            and _DEFINITION_LINE.match(lines[index + 1].text)
            and not _DEFINITION_LINE.match(line.text)
        ):
            pair, after = _definition_list_pair(text, lines, index)
        if pair is not None:
            pairs.append(pair)
        index = max(after, index + 1)
    return pairs


def question_heading_pair(*, heading: str, text: str) -> QAPair | None:
    """A heading that asks a question, answered by its section up to the first explicit pair."""
    question = clean_question(heading)
    if not question.endswith("?"):
        return None
    inner = explicit_pairs(text=text)
    stop = inner[0].char_start if inner and inner[0].char_start is not None else len(text)
    lead = text[:stop].rstrip()
    start = len(lead) - len(lead.lstrip())
    if not lead.strip():
        return None
    return _pair(text, question, start, start, len(lead))


# --- definitions, headings, cloze ------------------------------------------------------------


def _is_technical(term: str) -> bool:
    """pH, TNF-α, IL-6, CO2, mRNA: a capital after the first letter, or letters with digits."""
    has_digit = any(character.isdigit() for character in term)
    has_letter = any(character.isalpha() for character in term)
    return any(character.isupper() for character in term[1:]) or (has_digit and has_letter)


def _mid_sentence(term: str, text: str) -> str:
    """``term`` as it reads mid-sentence. Its capital is dropped only when it looks like a
    sentence-start capital: the text writes the term in lowercase elsewhere, or the term's other
    words are lowercase ("Agricultural lime"), unlike names ("Royal Society") and acronyms."""
    first, *rest = term.split()
    if not first.istitle() or _is_technical(first):
        return term
    lowered = term[0].lower() + term[1:]
    if lowered in text or any(word.isalpha() and word.islower() for word in rest):
        return lowered
    return term


def _display_term(article: str | None, term: str, text: str) -> str:
    term = _mid_sentence(term.strip("`*_\"'"), text)
    return f"{article.strip().lower()} {term}" if article else term


def definition_pairs(*, text: str) -> list[QAPair]:
    """Questions for whole sentences of ``text`` shaped like definitions ("X is a Y ...").

    The answer is the sentence as it reads (wrapped lines joined); its span is the sentence."""
    pairs = []
    for start, end in sentences(text=text):
        sentence = flow(text[start:end])
        match = _DEFINITION.match(sentence)
        if match is None or match["term"].split()[0].lower() in _PRONOUNS:
            continue
        if _has_broken_word(match["term"]) or re.search(r"[|#\[\]<>{}=]", match["term"]):
            continue
        if sentence.endswith(":"):
            continue  # it introduces a list or code that is not part of the answer
        term = _display_term(match["article"], match["term"], text)
        question = _QUESTIONS[match["verb"]].format(term=term)
        pairs.append(QAPair(question, sentence, start, end))
    return pairs


def heading_pair(*, chunk: Chunk) -> QAPair | None:
    """The section heading as a question, answered by the section's first chunk up to its last
    sentence end. Headings that are questions are taken as written."""
    if chunk.part != 0 or not chunk.source.heading_path:
        return None
    heading = clean_question(chunk.source.heading_path[-1]).rstrip(":").strip()
    if not heading:
        return None
    end = _last_sentence_end(chunk.text)
    answer = flow(chunk.text[:end])
    if not answer:
        return None
    if heading.endswith("?"):
        return QAPair(heading, answer, 0, end)
    question = f"What should I know about {_mid_sentence(heading, chunk.text)}?"
    return QAPair(question, answer, 0, end)


def _cloze_term(sentence: str, rng: random.Random) -> re.Match[str] | None:
    protected = [match.span() for match in _PLACEHOLDER.finditer(sentence)]

    def free(term: re.Match[str]) -> bool:
        return all(term.end() <= start or term.start() >= end for start, end in protected)

    terms = [term for term in list(_TERM.finditer(sentence))[1:] if free(term)]
    technical = [term for term in terms if _is_technical(term.group())]
    long_words = [term for term in terms if len(term.group()) >= 9 and term.group().isalpha()]
    choices = technical or long_words
    return rng.choice(choices) if choices else None


def cloze_pairs(*, text: str, limit: int = 1, seed: int | str = 0) -> list[QAPair]:
    """Up to ``limit`` fill-in-the-blank questions on whole sentences, chosen deterministically
    from ``seed``; placeholders and the first word are never blanked."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible sampling, not security
    spans = [
        span
        for span in sentences(text=text)
        if len(text[span[0] : span[1]].split()) >= _MIN_CLOZE_WORDS
    ]
    rng.shuffle(spans)
    pairs = []
    for start, end in spans:
        sentence = flow(text[start:end])
        term = _cloze_term(sentence, rng)
        if term is not None:
            blanked = f"{sentence[: term.start()]}{BLANK}{sentence[term.end() :]}"
            pairs.append(QAPair(f"Fill in the blank: {blanked}", term.group(), start, end))
        if len(pairs) == limit:
            break
    return pairs


# --- synthesis ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Passage:
    """Text the rules read once: a document section (or a lone chunk), with where it sits."""

    text: str
    offset: int
    """Where ``text`` starts in the document text."""
    source: Provenance
    covered: tuple[tuple[int, int], ...]
    """Document spans of the kept chunks within it; a unit is used when it starts in one."""

    def admits(self, start: int) -> bool:
        position = self.offset + start
        index = bisect.bisect_right(self.covered, (position, float("inf"))) - 1
        return index >= 0 and self.covered[index][0] <= position < self.covered[index][1]

    def provenance(self, pair: QAPair) -> Provenance:
        if pair.char_start is None or pair.char_end is None:
            return self.source
        return Provenance(
            document_id=self.source.document_id,
            page=self.source.page,
            heading_path=self.source.heading_path,
            row=self.source.row,
            char_start=self.offset + pair.char_start,
            char_end=self.offset + pair.char_end,
        )


def _passages(chunks: Sequence[Chunk], documents: Sequence[ParsedDocument]) -> list[_Passage]:
    """Sections of ``documents`` that hold kept chunks, or each chunk when no document is given."""
    if not documents:
        return [
            _Passage(c.text, c.source.char_start or 0, c.source, ((0, 1 << 62),)) for c in chunks
        ]
    spans: dict[str, list[tuple[int, int]]] = {}
    for chunk in chunks:
        if chunk.source.char_start is not None and chunk.source.char_end is not None:
            spans.setdefault(chunk.source.document_id, []).append(
                (chunk.source.char_start, chunk.source.char_end)
            )
    passages = []
    for document in documents:
        covered = sorted(spans.get(document.document_id, ()))
        for section in document.sections:
            inside = tuple(
                (start, end)
                for start, end in covered
                if start < section.char_end and end > section.char_start
            )
            if inside:
                source = Provenance(
                    document_id=document.document_id,
                    page=section.page,
                    heading_path=section.heading_path,
                    row=section.row,
                )
                passages.append(_Passage(section.text, section.char_start, source, inside))
    return passages


def _inside(pair: QAPair, spans: Sequence[tuple[int, int]]) -> bool:
    start, end = pair.char_start or 0, pair.char_end or 0
    return any(first <= start and end <= last for first, last in spans)


def _passage_pairs(
    passage: _Passage, options: SynthesisOptions
) -> Iterator[tuple[ExampleKind, QAPair]]:
    """Explicit pairs, then definitions outside them, then cloze, for one passage."""
    taken: list[tuple[int, int]] = []
    if options.explicit:
        heading = passage.source.heading_path[-1] if passage.source.heading_path else ""
        pairs = explicit_pairs(text=passage.text)
        lead = question_heading_pair(heading=heading, text=passage.text) if heading else None
        for pair in [*([lead] if lead else []), *pairs]:
            if passage.admits(pair.char_start or 0):
                taken.append((pair.char_start or 0, pair.char_end or 0))
                yield ExampleKind.EXPLICIT, pair
    if options.definitions:
        for pair in definition_pairs(text=passage.text):
            if passage.admits(pair.char_start or 0) and not _inside(pair, taken):
                yield ExampleKind.DEFINITION, pair
    if options.cloze and options.max_cloze_per_chunk > 0:
        seed = f"{options.seed}:{passage.source.document_id}:{passage.offset}"
        limit = options.max_cloze_per_chunk * max(len(passage.covered), 1)
        for pair in cloze_pairs(text=passage.text, limit=limit, seed=seed):
            if passage.admits(pair.char_start or 0):
                yield ExampleKind.CLOZE, pair


def _narrowed(chunk: Chunk, pair: QAPair) -> Provenance:
    """The chunk's provenance, narrowed to the pair's span when it has a valid one."""
    source = chunk.source
    if pair.char_start is None or pair.char_end is None or source.char_start is None:
        return source
    if not 0 <= pair.char_start < pair.char_end <= len(chunk.text):
        return source
    start = source.char_start + pair.char_start
    return Provenance(
        document_id=source.document_id,
        page=source.page,
        heading_path=source.heading_path,
        row=source.row,
        char_start=start,
        char_end=start + (pair.char_end - pair.char_start),
    )


def _is_usable(pair: object) -> bool:
    if not isinstance(pair, QAPair):
        return False
    return all(isinstance(part, str) and part.strip() for part in (pair.question, pair.answer))


def _generated_pairs(
    chunk: Chunk, generator: QAGenerator, options: SynthesisOptions
) -> tuple[list[QAPair], int]:
    """The generator's usable pairs for ``chunk`` (at most the limit), and how many it spoiled."""
    produced = list(generator(chunk=chunk, max_pairs=options.max_generated_per_chunk))
    usable = [pair for pair in produced if _is_usable(pair)]
    kept = usable[: options.max_generated_per_chunk]
    return kept, len(produced) - len(kept)


class _Collector:
    """Examples in order, each once, with ids unique within the run."""

    def __init__(self, options: SynthesisOptions) -> None:
        self.options = options
        self.examples: list[Example] = []
        self.seen: set[tuple[ExampleKind, str, str]] = set()
        self.ordinals: Counter[tuple[ExampleKind, str]] = Counter()

    def add(self, kind: ExampleKind, pair: QAPair, source: Provenance) -> None:
        question, answer = pair.question.strip(), pair.answer.strip()
        place = repr(sorted(source.to_json().items()))
        if (kind, place, question) in self.seen:
            return  # the same sentence reached twice (e.g. in the overlap of two chunks)
        self.seen.add((kind, place, question))
        messages = question_answer(
            question=question, answer=answer, system_prompt=self.options.system_prompt
        )
        ordinal = self.ordinals[kind, place]
        self.ordinals[kind, place] += 1
        self.examples.append(
            make_example(messages=messages, source=source, kind=kind, ordinal=ordinal)
        )


def synthesize_examples(
    *,
    chunks: Sequence[Chunk],
    documents: Sequence[ParsedDocument] = (),
    options: SynthesisOptions | None = None,
    generator: QAGenerator | None = None,
) -> SynthesisResult:
    """Question/answer examples from the kept ``chunks``, rule-based plus the generator's.

    With ``documents`` (the cleaned documents the chunks index), sentence rules read each section
    once, across chunk boundaries, and use what starts in a kept chunk; without them each chunk
    is read on its own. Generated pairs that are not :class:`QAPair` with non-empty question and
    answer, or that exceed ``max_generated_per_chunk``, are dropped and counted in
    ``rejected_generated``.
    """
    options = options or SynthesisOptions()
    collector = _Collector(options)
    explicit: dict[str, list[tuple[int, int]]] = {}
    for passage in _passages(chunks, documents):
        for kind, pair in _passage_pairs(passage, options):
            source = passage.provenance(pair)
            collector.add(kind, pair, source)
            if kind == ExampleKind.EXPLICIT and source.char_start is not None:
                spans = explicit.setdefault(source.document_id, [])
                spans.append((source.char_start, source.char_end or source.char_start))
    rejected = 0
    for chunk in chunks:
        heading = heading_pair(chunk=chunk) if options.headings else None
        asks = heading is not None and clean_question(chunk.source.heading_path[-1]).endswith("?")
        if heading is not None and not (options.explicit and asks):
            source = _narrowed(chunk, heading)
            start, end = source.char_start or 0, source.char_end or 0
            spans = explicit.get(source.document_id, [])
            if not any(first < end and start < last for first, last in spans):
                # (a section that holds explicit pairs is better taught by them)
                collector.add(ExampleKind.HEADING, heading, source)
        if generator is not None:
            generated, spoiled = _generated_pairs(chunk, generator, options)
            for pair in generated:
                collector.add(ExampleKind.GENERATED, pair, _narrowed(chunk, pair))
            rejected += spoiled
    counts = Counter(example.kind for example in collector.examples)
    return SynthesisResult(
        examples=tuple(collector.examples),
        counts={kind: counts[kind] for kind in ExampleKind},
        rejected_generated=rejected,
    )

"""Turn chunks into question/answer examples, each keeping its source span.

Rule-based, with no model: definitions ("X is a Y" -> "What is X?"), section headings as
questions (answered by the section's first chunk), and cloze sentences (a technical term
blanked out). When a chat model is configured, a :class:`QAGenerator` can add model-written
pairs; this module only defines the hook and checks what comes back.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from gptstudio.curation.chunking import Chunk, sentence_spans
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


@dataclass(frozen=True)
class QAPair:
    """A question and answer; the optional span is the supporting passage within the chunk."""

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

    definitions: bool = True
    headings: bool = True
    cloze: bool = True
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
    term = _mid_sentence(term, text)
    return f"{article.strip().lower()} {term}" if article else term


def definition_pairs(*, text: str) -> list[QAPair]:
    """Questions for sentences of ``text`` shaped like definitions ("X is a Y ...")."""
    pairs = []
    for start, end in sentence_spans(text=text):
        match = _DEFINITION.match(text[start:end])
        if match is None or match["term"].split()[0].lower() in _PRONOUNS:
            continue
        term = _display_term(match["article"], match["term"], text)
        question = _QUESTIONS[match["verb"]].format(term=term)
        pairs.append(QAPair(question, text[start:end], start, end))
    return pairs


def heading_pair(*, chunk: Chunk) -> QAPair | None:
    """The section heading as a question, answered by the section's first chunk."""
    if chunk.part != 0 or not chunk.source.heading_path:
        return None
    heading = chunk.source.heading_path[-1].strip()
    if heading.endswith("?"):
        return QAPair(heading, chunk.text)
    question = f"What should I know about {_mid_sentence(heading, chunk.text)}?"
    return QAPair(question, chunk.text)


def _cloze_term(sentence: str, rng: random.Random) -> re.Match[str] | None:
    terms = list(_TERM.finditer(sentence))[1:]  # never blank the sentence's first word
    technical = [term for term in terms if _is_technical(term.group())]
    long_words = [term for term in terms if len(term.group()) >= 9 and term.group().isalpha()]
    choices = technical or long_words
    return rng.choice(choices) if choices else None


def cloze_pairs(*, text: str, limit: int = 1, seed: int | str = 0) -> list[QAPair]:
    """Up to ``limit`` fill-in-the-blank questions, chosen deterministically from ``seed``."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible sampling, not security
    spans = [
        span
        for span in sentence_spans(text=text)
        if len(text[span[0] : span[1]].split()) >= _MIN_CLOZE_WORDS
    ]
    rng.shuffle(spans)
    pairs = []
    for start, end in spans:
        sentence = text[start:end]
        term = _cloze_term(sentence, rng)
        if term is not None:
            blanked = f"{sentence[: term.start()]}{BLANK}{sentence[term.end() :]}"
            pairs.append(QAPair(f"Fill in the blank: {blanked}", term.group(), start, end))
        if len(pairs) == limit:
            break
    return pairs


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


def _rule_pairs(chunk: Chunk, options: SynthesisOptions) -> Iterator[tuple[ExampleKind, QAPair]]:
    if options.definitions:
        for pair in definition_pairs(text=chunk.text):
            yield ExampleKind.DEFINITION, pair
    heading = heading_pair(chunk=chunk) if options.headings else None
    if heading is not None:
        yield ExampleKind.HEADING, heading
    if options.cloze and options.max_cloze_per_chunk > 0:
        seed = f"{options.seed}:{chunk.chunk_id}"
        for pair in cloze_pairs(text=chunk.text, limit=options.max_cloze_per_chunk, seed=seed):
            yield ExampleKind.CLOZE, pair


def _generated_pairs(
    chunk: Chunk, generator: QAGenerator, options: SynthesisOptions
) -> tuple[list[QAPair], int]:
    """The generator's usable pairs for ``chunk`` (at most the limit), and how many it spoiled."""
    produced = list(generator(chunk=chunk, max_pairs=options.max_generated_per_chunk))
    usable = [pair for pair in produced if _is_usable(pair)]
    kept = usable[: options.max_generated_per_chunk]
    return kept, len(produced) - len(kept)


def _to_example(
    chunk: Chunk, kind: ExampleKind, pair: QAPair, ordinal: int, options: SynthesisOptions
) -> Example:
    messages = question_answer(
        question=pair.question.strip(),
        answer=pair.answer.strip(),
        system_prompt=options.system_prompt,
    )
    return make_example(
        messages=messages, source=_narrowed(chunk, pair), kind=kind, ordinal=ordinal
    )


def synthesize_examples(
    *,
    chunks: Sequence[Chunk],
    options: SynthesisOptions | None = None,
    generator: QAGenerator | None = None,
) -> SynthesisResult:
    """Question/answer examples for every chunk, rule-based plus the optional generator's.

    Generated pairs that are not :class:`QAPair` with non-empty question and answer, or that
    exceed ``max_generated_per_chunk``, are dropped and counted in ``rejected_generated``.
    """
    options = options or SynthesisOptions()
    examples: list[Example] = []
    rejected = 0
    for chunk in chunks:
        pairs = list(_rule_pairs(chunk, options))
        if generator is not None:
            generated, spoiled = _generated_pairs(chunk, generator, options)
            pairs.extend((ExampleKind.GENERATED, pair) for pair in generated)
            rejected += spoiled
        ordinals: Counter[ExampleKind] = Counter()
        for kind, pair in pairs:
            examples.append(_to_example(chunk, kind, pair, ordinals[kind], options))
            ordinals[kind] += 1
    counts = Counter(example.kind for example in examples)
    return SynthesisResult(
        examples=tuple(examples),
        counts={kind: counts[kind] for kind in ExampleKind},
        rejected_generated=rejected,
    )

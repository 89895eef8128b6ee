"""Heuristic quality filters for chunks or examples, with a reason for every drop.

Rules (each can be relaxed): too few words; too repetitive (share of word n-grams that repeat an
earlier one, as in the Gopher rules); mostly non-text (share of non-space characters that are
letters); wrong language (only when the detector is confident and the text is long enough to
judge).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.language import UNDETERMINED, detect_language
from gptstudio.curation.shingles import words


class DropReason(enum.StrEnum):
    """Why a text was dropped."""

    TOO_SHORT = "too_short"
    REPETITIVE = "repetitive"
    NON_TEXT = "non_text"
    WRONG_LANGUAGE = "wrong_language"


@dataclass(frozen=True)
class QualityRules:
    """Thresholds for :func:`filter_quality`."""

    min_words: int = 8
    max_repeated_ngram_ratio: float = 0.3
    ngram_size: int = 3
    min_alpha_ratio: float = 0.5
    languages: frozenset[str] | None = None
    """ISO 639-1 codes to keep, e.g. ``frozenset({"en"})``; ``None`` keeps every language."""
    min_language_confidence: float = 0.9
    """Below this confidence a text is never dropped for its language."""

    def __post_init__(self) -> None:
        ratios = (self.max_repeated_ngram_ratio, self.min_alpha_ratio, self.min_language_confidence)
        if not all(0 <= ratio <= 1 for ratio in ratios):
            raise InvalidParameterError("Quality ratios and confidences must be between 0 and 1.")
        if self.min_words < 0 or self.ngram_size < 1:
            raise InvalidParameterError("min_words must be >= 0 and ngram_size >= 1.")


@dataclass(frozen=True)
class QualityResult:
    """Kept ids in input order, dropped ids with their reasons, and counts per reason."""

    kept: tuple[str, ...]
    dropped: dict[str, tuple[DropReason, ...]]
    counts: dict[DropReason, int]


def repeated_ngram_ratio(*, text: str, n: int = 3) -> float:
    """Share of word ``n``-grams that repeat one seen earlier in ``text`` (0: none repeat)."""
    tokens = words(text=text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def alpha_ratio(*, text: str) -> float:
    """Share of non-space characters that are letters (1.0 for an empty text)."""
    visible = [character for character in text if not character.isspace()]
    if not visible:
        return 1.0
    return sum(character.isalpha() for character in visible) / len(visible)


def _wrong_language(text: str, rules: QualityRules) -> bool:
    if rules.languages is None:
        return False
    guess = detect_language(text=text)
    if guess.code == UNDETERMINED or guess.confidence < rules.min_language_confidence:
        return False
    return guess.code not in rules.languages


def quality_problems(*, text: str, rules: QualityRules | None = None) -> tuple[DropReason, ...]:
    """Every rule ``text`` breaks; empty when it passes."""
    rules = rules or QualityRules()
    problems = []
    if len(words(text=text)) < rules.min_words:
        problems.append(DropReason.TOO_SHORT)
    if repeated_ngram_ratio(text=text, n=rules.ngram_size) > rules.max_repeated_ngram_ratio:
        problems.append(DropReason.REPETITIVE)
    if alpha_ratio(text=text) < rules.min_alpha_ratio:
        problems.append(DropReason.NON_TEXT)
    if _wrong_language(text, rules):
        problems.append(DropReason.WRONG_LANGUAGE)
    return tuple(problems)


def filter_quality(*, texts: Mapping[str, str], rules: QualityRules | None = None) -> QualityResult:
    """Split ``texts`` (id -> text) into kept and dropped, with reasons and counts."""
    rules = rules or QualityRules()
    kept, dropped = [], {}
    counts: Counter[DropReason] = Counter()
    for name, text in texts.items():
        problems = quality_problems(text=text, rules=rules)
        if problems:
            dropped[name] = problems
            counts.update(problems)
        else:
            kept.append(name)
    return QualityResult(
        kept=tuple(kept),
        dropped=dropped,
        counts={reason: counts[reason] for reason in DropReason},
    )

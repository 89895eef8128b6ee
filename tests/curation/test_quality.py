"""Quality filters drop with reasons and counts, and keep good text."""

from __future__ import annotations

import pytest

from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.quality import (
    DropReason,
    QualityRules,
    alpha_ratio,
    filter_quality,
    repeated_ngram_ratio,
)

GOOD = "Agricultural lime raises the pH of acidic soil over several months of steady rain."
GERMAN = "Landwirtschaftlicher Kalk hebt den pH-Wert saurer Böden über mehrere Monate an."


def test_each_rule_has_its_reason() -> None:
    texts = {
        "good": GOOD,
        "short": "Too short.",
        "repetitive": "buy now " * 30,
        "numbers": "12 34 56 78 90 12 34 56 78 90 11 22 33 44 55 66 77 88 99 00 1.5 2.5",
        "german": GERMAN,
    }
    result = filter_quality(texts=texts, rules=QualityRules(languages=frozenset({"en"})))
    assert result.kept == ("good",)
    assert result.dropped["short"] == (DropReason.TOO_SHORT,)
    assert DropReason.REPETITIVE in result.dropped["repetitive"]
    assert DropReason.NON_TEXT in result.dropped["numbers"]
    assert result.dropped["german"] == (DropReason.WRONG_LANGUAGE,)
    assert result.counts[DropReason.WRONG_LANGUAGE] == 1


def test_any_language_is_kept_by_default() -> None:
    assert filter_quality(texts={"german": GERMAN}).kept == ("german",)


def test_measures() -> None:
    assert repeated_ngram_ratio(text="a b c a b c a b c", n=3) == pytest.approx(4 / 7)
    assert repeated_ngram_ratio(text="short") == 0
    assert alpha_ratio(text="ab 12") == 0.5


def test_rules_are_checked() -> None:
    with pytest.raises(InvalidParameterError):
        QualityRules(min_alpha_ratio=2)

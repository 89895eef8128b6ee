"""Language identification with py3langid (a maintained fork of langid.py; small, offline).

The identifier loads once per process (under a second) on first use. Texts with too few letters
to judge are reported as ``"und"`` (undetermined) rather than guessed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from py3langid.langid import MODEL_FILE, LanguageIdentifier

UNDETERMINED = "und"
MIN_LETTERS = 20


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639-1 code (or ``"und"``) and a probability in [0, 1]."""

    code: str
    confidence: float


@functools.cache
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(*, text: str) -> LanguageGuess:
    """The most likely language of ``text``."""
    if sum(character.isalpha() for character in text[:2000]) < MIN_LETTERS:
        return LanguageGuess(UNDETERMINED, 0.0)
    code, confidence = _identifier().classify(text)
    return LanguageGuess(str(code), float(confidence))

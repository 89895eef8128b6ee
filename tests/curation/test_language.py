"""Language identification, abstaining on text too short to judge."""

from __future__ import annotations

from gptstudio.curation.language import UNDETERMINED, detect_language


def test_common_languages() -> None:
    english = detect_language(
        text="Agricultural lime raises the pH of acidic soil over several months."
    )
    german = detect_language(
        text="Kalk hebt den pH-Wert saurer Böden über mehrere Monate langsam an."
    )
    assert (english.code, german.code) == ("en", "de")
    assert english.confidence > 0.9


def test_short_or_symbolic_text_is_undetermined() -> None:
    assert detect_language(text="TNF-α 12 mg/L").code == UNDETERMINED

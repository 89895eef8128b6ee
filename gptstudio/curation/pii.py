"""Replace personal data with typed placeholders and count what was replaced.

Detected: e-mail addresses, phone numbers (Google's libphonenumber via ``phonenumbers``; only
numbers valid for their region), payment card numbers (13-19 digits passing the Luhn check;
other digit runs are left alone), IBANs (mod-97 checksum), IPv4 and IPv6 addresses (validated by
:mod:`ipaddress`) and US social security numbers (``python-stdnum`` rules). Checksums and
validation come from those libraries; the regular expressions only find candidates.

Detectors run in a fixed order on the text as already scrubbed, so one value is never counted
twice (a card number is not also a phone number). Categories can be switched off one by one.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

from gptstudio.curation.documents import ParsedDocument
from gptstudio.curation.examples import Example, Message


class PiiCategory(enum.StrEnum):
    """Kinds of personal data, each with its own placeholder."""

    EMAIL = "email"
    IBAN = "iban"
    CARD = "card"
    NATIONAL_ID = "national_id"
    IP_ADDRESS = "ip_address"
    PHONE = "phone"

    @property
    def placeholder(self) -> str:
        """The text that replaces a value of this category, e.g. ``[EMAIL]``."""
        return {"ip_address": "[IP]"}.get(self.value, f"[{self.value.upper()}]")


@dataclass(frozen=True)
class PiiOptions:
    """Which categories to scrub, and the region phone numbers without a ``+`` belong to."""

    categories: frozenset[PiiCategory] = frozenset(PiiCategory)
    phone_region: str | None = "US"
    """ISO 3166 region for national-format numbers; ``None``: only ``+``-prefixed numbers."""


@dataclass(frozen=True)
class ScrubbedText:
    """Text with placeholders, and how many values of each category were replaced."""

    text: str
    counts: Counter[PiiCategory]


Span = tuple[int, int]

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# Not followed by ".digit": an IPv4-mapped tail is left whole for the IPv4 pattern.
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\d)")


def _emails(text: str, _: PiiOptions) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        yield match.span()


def _ibans(text: str, _: PiiOptions) -> Iterator[Span]:
    for match in _IBAN.finditer(text):
        # The pattern may run on into following capitalised words: try shorter cuts too.
        candidate = match.group()
        cuts = [len(candidate)] + [
            i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " "
        ]
        for cut in cuts:
            if iban.is_valid(candidate[:cut]):
                yield match.start(), match.start() + cut
                break


def _cards(text: str, _: PiiOptions) -> Iterator[Span]:
    for match in _CARD.finditer(text):
        found = _luhn_window(match.group())
        if found is not None:
            yield match.start() + found[0], match.start() + found[1]


def _luhn_window(candidate: str) -> Span | None:
    """The longest run of separator-delimited digit groups that is a Luhn-valid card number."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", candidate)]
    for size in range(len(groups), 0, -1):
        for first in range(len(groups) - size + 1):
            start, end = groups[first][0], groups[first + size - 1][1]
            digits = re.sub(r"\D", "", candidate[start:end])
            if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
                return start, end
    return None


def _national_ids(text: str, _: PiiOptions) -> Iterator[Span]:
    for match in _SSN.finditer(text):
        if ssn.is_valid(match.group()):
            yield match.span()


def _ip_addresses(text: str, _: PiiOptions) -> Iterator[Span]:
    for pattern, address_type in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for match in pattern.finditer(text):
            if any(character.isalnum() for character in match.group()):
                try:
                    address_type(match.group())
                except ValueError:
                    continue
                yield match.span()


def _phones(text: str, options: PiiOptions) -> Iterator[Span]:
    matcher = phonenumbers.PhoneNumberMatcher(
        text, options.phone_region or "ZZ", leniency=phonenumbers.Leniency.VALID
    )
    for match in matcher:
        yield match.start, match.end


_DETECTORS: tuple[tuple[PiiCategory, Callable[[str, PiiOptions], Iterator[Span]]], ...] = (
    (PiiCategory.EMAIL, _emails),
    (PiiCategory.IBAN, _ibans),
    (PiiCategory.CARD, _cards),
    (PiiCategory.NATIONAL_ID, _national_ids),
    (PiiCategory.IP_ADDRESS, _ip_addresses),
    (PiiCategory.PHONE, _phones),
)


def _replace(text: str, spans: Sequence[Span], placeholder: str) -> tuple[str, int]:
    """``text`` with ``spans`` replaced, and how many were replaced."""
    pieces: list[str] = []
    position = replaced = 0
    for start, end in sorted(set(spans)):
        if start < position:  # overlapping candidates: the first one wins
            continue
        pieces.extend((text[position:start], placeholder))
        position, replaced = end, replaced + 1
    pieces.append(text[position:])
    return "".join(pieces), replaced


def scrub_text(*, text: str, options: PiiOptions | None = None) -> ScrubbedText:
    """``text`` with every enabled kind of personal data replaced by its placeholder."""
    options = options or PiiOptions()
    counts: Counter[PiiCategory] = Counter()
    for category, detect in _DETECTORS:
        if category not in options.categories:
            continue
        spans = list(detect(text, options))
        if spans:
            text, replaced = _replace(text, spans, category.placeholder)
            counts[category] += replaced
    return ScrubbedText(text=text, counts=counts)


@dataclass(frozen=True)
class ScrubbedDocument:
    """A document with personal data replaced, and the counts per category."""

    document: ParsedDocument
    counts: dict[PiiCategory, int]


def _scrub_example(example: Example, options: PiiOptions, counts: Counter[PiiCategory]) -> Example:
    messages = []
    for message in example.messages:
        scrubbed = scrub_text(text=message.content, options=options)
        counts.update(scrubbed.counts)
        messages.append(Message(message.role, scrubbed.text))
    return dataclasses.replace(example, messages=tuple(messages))


def scrub_examples(
    *, examples: Sequence[Example], options: PiiOptions | None = None
) -> tuple[tuple[Example, ...], dict[PiiCategory, int]]:
    """Examples with personal data replaced in every message, and the counts per category."""
    options = options or PiiOptions()
    counts: Counter[PiiCategory] = Counter()
    scrubbed = tuple(_scrub_example(example, options, counts) for example in examples)
    return scrubbed, {category: counts[category] for category in PiiCategory}


def scrub_document(
    *, document: ParsedDocument, options: PiiOptions | None = None
) -> ScrubbedDocument:
    """Scrub every section and imported example; section offsets are laid out again."""
    options = options or PiiOptions()
    counts: Counter[PiiCategory] = Counter()
    sections = []
    for section in document.sections:
        scrubbed = scrub_text(text=section.text, options=options)
        counts.update(scrubbed.counts)
        sections.append(dataclasses.replace(section, text=scrubbed.text))
    examples, example_counts = scrub_examples(examples=document.examples, options=options)
    counts.update(example_counts)
    cleaned = dataclasses.replace(document.with_sections(sections), examples=examples)
    return ScrubbedDocument(cleaned, {category: counts[category] for category in PiiCategory})

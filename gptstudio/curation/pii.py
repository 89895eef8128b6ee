"""Replace personal data with typed placeholders and count what was replaced.

Detected: e-mail addresses (internationalised domains too), phone numbers (Google's
libphonenumber via ``phonenumbers``), payment card numbers (13-19 digits passing the Luhn check;
other digit runs are left alone), IBANs in either case (mod-97 checksum), IPv4 and IPv6
addresses (validated by :mod:`ipaddress`) and US social security numbers (``python-stdnum``
rules). Checksums and validation come from those libraries; the regular expressions only find
candidates.

Context decides for the two kinds that look like everyday numbers. A dotted quad is an IP only
with IP-like context (a word such as "host", "address" or "ping" nearby, a port or prefix
length, a URL), never after "version" or "section" or inside a longer dotted number (OIDs). A
digit group is a phone number when it is written internationally ("+44 20 7946 0958", "0044 ...")
or in a shape only phones take ("(415) 867-5309", "415-867-5309"), or when a phone word ("call",
"tel", "Telefon", "mobile" ...) stands just before it; ping statistics, counts and timestamps have
none of these. National numbers are read for the regions of the document's language (English: US,
GB, AU, CA, IE, NZ; German: DE, AT, CH; French: FR, BE, CH, CA; ...) or for the region set in
:class:`PiiOptions`.

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


AUTO_REGION = "auto"


@dataclass(frozen=True)
class PiiOptions:
    """Which categories to scrub, and the region phone numbers without a ``+`` belong to."""

    categories: frozenset[PiiCategory] = frozenset(PiiCategory)
    phone_region: str | None = AUTO_REGION
    """ISO 3166 region for national-format numbers; ``"auto"``: the regions of the document's
    language (US when it is unknown); ``None``: only international numbers."""


@dataclass(frozen=True)
class ScrubbedText:
    """Text with placeholders, and how many values of each category were replaced."""

    text: str
    counts: Counter[PiiCategory]


Span = tuple[int, int]

# Domains may be internationalised (münchen.de, 例え.jp) or punycode (xn--mnchen-3ya.de).
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)\b"
)
# Endings that are file types, not top-level domains: gettext's "en@quot.header" is a file name.
_FILE_EXTENSIONS = frozenset(
    {
        "header", "sed", "sin", "pot", "gmo", "po", "txt", "conf", "cfg", "ini", "log", "json",
        "html", "htm", "xml", "yaml", "yml", "toml", "tar", "gz", "xz", "bz2", "zst", "deb", "dsc",
        "patch", "diff", "orig", "changes", "lock", "tmp", "bak", "png", "jpg", "jpeg", "gif",
        "svg", "pdf", "js",
    }
)  # fmt: skip
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{1,4}){3,8}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
# Not inside a longer dotted number (OIDs, versions); a sentence's full stop may follow.
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_CONTEXT_CHARS = 40
_IP_WORDS = re.compile(
    r"\b(?:ip|ipv[46]|ip-?address(?:es)?|address(?:es)?|addr|host(?:name)?s?|server|client|peer|"
    r"ping|pinged|gateway|router|dns|nameserver|resolver|subnet|netmask|inet6?|route|proxy|"
    r"firewall|lan|wan|vpn|ssh|telnet|connect(?:ed|s|ion)?|from|to|via|at|listen(?:s|ing)?|bind|"
    r"bound|node|machine|device|logged|login|visitor|remote|origin|src|dst|source|destination|"
    r"blocked|banned|whitelist(?:ed)?|allow(?:ed)?|deny|denied|traceroute|curl|wget|http|https|"
    r"GET|POST)\b(?:[^.\n]|\.(?=\S)){0,30}$",
    re.IGNORECASE,
)
_IP_WORDS_AFTER = re.compile(
    r"\s*(?:\)|,)?\s*(?:is|was)?\s*(?:up|down|unreachable|responds)\b"
    r"|\s+-\s+\S+\s+\[\d"  # the start of a web server's access log line
)
_NOT_IP_BEFORE = re.compile(
    r"(?:\b(?:version|ver|release|rel|v|section|sect|chapter|clause|oid|rfc|§|figure|fig|"
    r"table|step|item|no|number|build)\.?\s*|\b(?:upgrad|updat|downgrad|bump|releas|version)\w*"
    r"\b[^\n]{0,30})$",
    re.IGNORECASE,
)
_DOTTED_AFTER = re.compile(r"\.\d|-\d|\)\s+(?:unstable|stable|testing|experimental|urgency)")
_PORT_OR_PREFIX = re.compile(r"(?::\d{1,5}\b|/\d{1,2}\b)")
_PHONE_WORDS = re.compile(
    r"(?:\b(?:phone|phones|telephone|tel|tél|téléphone|telefon|telefonnummer|fon|fax|mobile|"
    r"mobil|handy|cell|cellphone|portable|call|called|calling|ring|dial|text|sms|whatsapp|"
    r"contact|reach|hotline|helpline|rufen|anrufen|appelez|appeler|numéro)\b\.?"
    r"[^\n\d]{0,20}|[☎📞])$",
    re.IGNORECASE,
)
# A national number written in a shape only phones take: (415) 867-5309, 415-867-5309, 415.867.5309
_PHONE_SHAPE = re.compile(r"^(?:\(\d{2,5}\)\s?\d{3,4}[\s.-]?\d{3,4}|\d{3}([.-])\d{3}\1\d{4})$")
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+.,/:=-])(?:\+|00)?\(?\d[\d().\-/ \t]{5,22}\d(?![\w/]|[.,:]\d|-\d)"
)
_PHONE_DIGITS = (7, 15)
_DEFAULT_REGIONS = ("US",)
_LANGUAGE_REGIONS = {
    "en": ("US", "GB", "AU", "CA", "IE", "NZ"),
    "de": ("DE", "AT", "CH"),
    "fr": ("FR", "BE", "CH", "CA"),
    "es": ("ES", "MX", "AR", "CO"),
    "it": ("IT", "CH"),
    "nl": ("NL", "BE"),
    "pt": ("PT", "BR"),
    "pl": ("PL",),
    "sv": ("SE",),
    "da": ("DK",),
    "nb": ("NO",),
    "no": ("NO",),
    "fi": ("FI",),
    "ja": ("JP",),
    "zh": ("CN", "TW", "HK"),
    "ko": ("KR",),
    "ru": ("RU",),
}
# Not followed by ".digit": an IPv4-mapped tail is left whole for the IPv4 pattern.
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]|\.\d)")


def _emails(text: str, _: tuple[str, ...]) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        if match.group().rsplit(".", 1)[-1].lower() not in _FILE_EXTENSIONS:
            yield match.span()


def _ibans(text: str, _: tuple[str, ...]) -> Iterator[Span]:
    for match in _IBAN.finditer(text):
        # The pattern may run on into following capitalised words: try shorter cuts too.
        candidate = match.group()
        cuts = [len(candidate)] + [
            i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " "
        ]
        for cut in cuts:
            if iban.is_valid(candidate[:cut].upper()):
                yield match.start(), match.start() + cut
                break


def _cards(text: str, _: tuple[str, ...]) -> Iterator[Span]:
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


def _national_ids(text: str, _: tuple[str, ...]) -> Iterator[Span]:
    for match in _SSN.finditer(text):
        if ssn.is_valid(match.group()):
            yield match.span()


def _ip_context(text: str, start: int, end: int) -> bool:
    """Whether the words around ``text[start:end]`` say it is a network address."""
    before, after = text[max(0, start - _CONTEXT_CHARS) : start], text[end : end + 12]
    if _NOT_IP_BEFORE.search(before) or _DOTTED_AFTER.match(after):
        return False
    return bool(
        _PORT_OR_PREFIX.match(after) or _IP_WORDS.search(before) or _IP_WORDS_AFTER.match(after)
    )


def _ip_addresses(text: str, _: tuple[str, ...]) -> Iterator[Span]:
    for pattern, address_type in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for match in pattern.finditer(text):
            value = match.group()
            if not any(character.isdigit() for character in value):
                continue
            try:
                address_type(value)
            except ValueError:
                continue
            if address_type is ipaddress.IPv6Address or _ip_context(text, *match.span()):
                yield match.span()


def regions_for_language(*, language: str | None) -> tuple[str, ...]:
    """The regions whose national phone formats a document in ``language`` likely uses."""
    return _LANGUAGE_REGIONS.get((language or "").lower(), _DEFAULT_REGIONS)


def _phone_word_before(text: str, start: int) -> bool:
    return bool(_PHONE_WORDS.search(text[max(0, start - _CONTEXT_CHARS) : start]))


def _international(candidate: str) -> phonenumbers.PhoneNumber | None:
    written = candidate.lstrip("(")
    if written.startswith("00") and not written.startswith("000"):
        written = "+" + written[2:]
    if not written.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(written, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _parsed(candidate: str, regions: tuple[str, ...]) -> Iterator[phonenumbers.PhoneNumber]:
    for region in regions:
        try:
            yield phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue


def _valid_in(candidate: str, regions: tuple[str, ...]) -> bool:
    return any(phonenumbers.is_valid_number(number) for number in _parsed(candidate, regions))


def _possible_in(candidate: str, regions: tuple[str, ...]) -> bool:
    return any(phonenumbers.is_possible_number(number) for number in _parsed(candidate, regions))


def _is_phone(text: str, start: int, candidate: str, regions: tuple[str, ...]) -> bool:
    digits = sum(character.isdigit() for character in candidate)
    if not _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]:
        return False
    context = _phone_word_before(text, start)
    number = _international(candidate)
    if number is not None:  # "+1 555 201 4477": written as a phone number, even if unassigned
        return context or phonenumbers.is_valid_number(number) or " " in candidate.strip()
    if not regions:
        return False
    if context:  # "Mobile: 07700 900123" (a number kept free for fiction, but written as a phone)
        return _possible_in(candidate, regions)
    return _PHONE_SHAPE.match(candidate) is not None and _valid_in(candidate, regions)


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    for match in _PHONE_CANDIDATE.finditer(text):
        candidate = match.group().rstrip(" -./")
        if _is_phone(text, match.start(), candidate, regions):
            yield match.start(), match.start() + len(candidate)


_DETECTORS: tuple[tuple[PiiCategory, Callable[[str, tuple[str, ...]], Iterator[Span]]], ...] = (
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


def _regions(options: PiiOptions, language: str | None) -> tuple[str, ...]:
    if options.phone_region is None:
        return ()
    if options.phone_region == AUTO_REGION:
        return regions_for_language(language=language)
    return (options.phone_region.upper(),)


def scrub_text(
    *, text: str, options: PiiOptions | None = None, language: str | None = None
) -> ScrubbedText:
    """``text`` with every enabled kind of personal data replaced by its placeholder.

    ``language`` (ISO 639-1, e.g. from cleaning) picks the phone regions when the options say
    ``"auto"``.
    """
    options = options or PiiOptions()
    regions = _regions(options, language)
    counts: Counter[PiiCategory] = Counter()
    for category, detect in _DETECTORS:
        if category not in options.categories:
            continue
        spans = list(detect(text, regions))
        if spans:
            text, replaced = _replace(text, spans, category.placeholder)
            counts[category] += replaced
    return ScrubbedText(text=text, counts=counts)


@dataclass(frozen=True)
class ScrubbedDocument:
    """A document with personal data replaced, and the counts per category."""

    document: ParsedDocument
    counts: dict[PiiCategory, int]


def _scrub_example(
    example: Example, options: PiiOptions, counts: Counter[PiiCategory], language: str | None
) -> Example:
    messages = []
    for message in example.messages:
        scrubbed = scrub_text(text=message.content, options=options, language=language)
        counts.update(scrubbed.counts)
        messages.append(Message(message.role, scrubbed.text))
    return dataclasses.replace(example, messages=tuple(messages))


def scrub_examples(
    *, examples: Sequence[Example], options: PiiOptions | None = None, language: str | None = None
) -> tuple[tuple[Example, ...], dict[PiiCategory, int]]:
    """Examples with personal data replaced in every message, and the counts per category."""
    options = options or PiiOptions()
    counts: Counter[PiiCategory] = Counter()
    scrubbed = tuple(_scrub_example(example, options, counts, language) for example in examples)
    return scrubbed, {category: counts[category] for category in PiiCategory}


def scrub_document(
    *, document: ParsedDocument, options: PiiOptions | None = None, language: str | None = None
) -> ScrubbedDocument:
    """Scrub every section and imported example; section offsets are laid out again.

    ``language`` is the document's (from cleaning); it picks the phone regions under "auto".
    """
    options = options or PiiOptions()
    counts: Counter[PiiCategory] = Counter()
    sections = []
    for section in document.sections:
        scrubbed = scrub_text(text=section.text, options=options, language=language)
        counts.update(scrubbed.counts)
        sections.append(dataclasses.replace(section, text=scrubbed.text))
    examples, example_counts = scrub_examples(
        examples=document.examples, options=options, language=language
    )
    counts.update(example_counts)
    cleaned = dataclasses.replace(document.with_sections(sections), examples=examples)
    return ScrubbedDocument(cleaned, {category: counts[category] for category in PiiCategory})

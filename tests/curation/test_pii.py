"""Personal data becomes typed placeholders; look-alikes that fail validation stay."""

from __future__ import annotations

import pytest

from gptstudio.curation.parsers import parse_document
from gptstudio.curation.pii import PiiCategory, PiiOptions, scrub_document, scrub_text


@pytest.mark.parametrize(
    ("text", "scrubbed", "category"),
    [
        ("Mail jane.doe+work@example.co.uk today", "Mail [EMAIL] today", PiiCategory.EMAIL),
        ("Call (415) 555-2671 now", "Call [PHONE] now", PiiCategory.PHONE),
        ("Call +44 20 7946 0958 now", "Call [PHONE] now", PiiCategory.PHONE),
        ("Card 4111 1111 1111 1111 ok", "Card [CARD] ok", PiiCategory.CARD),
        ("Card 5500-0000-0000-0004.", "Card [CARD].", PiiCategory.CARD),
        ("IBAN DE89 3704 0044 0532 0130 00 AND more", "IBAN [IBAN] AND more", PiiCategory.IBAN),
        ("Pay GB82WEST12345698765432.", "Pay [IBAN].", PiiCategory.IBAN),
        ("Host 192.168.1.20 is up", "Host [IP] is up", PiiCategory.IP_ADDRESS),
        ("Host fe80::1ff:fe23:4567:890a is up", "Host [IP] is up", PiiCategory.IP_ADDRESS),
        ("SSN 536-22-1234 on file", "SSN [NATIONAL_ID] on file", PiiCategory.NATIONAL_ID),
    ],
)
def test_each_category_is_replaced_and_counted(
    text: str, scrubbed: str, category: PiiCategory
) -> None:
    result = scrub_text(text=text)
    assert result.text == scrubbed
    assert result.counts == {category: 1}


@pytest.mark.parametrize(
    "text",
    [
        "Order 1234567812345678 shipped",  # 16 digits, fails Luhn
        "Card 4111-1111-1111-1112 declined",  # fails Luhn
        "IBAN DE00 3704 0044 0532 0130 00",  # bad checksum
        "Address 999.1.1.1 is not an IP",
        "Meeting at 12:30:45 on 2024-01-15",
        "SSN 000-12-3456 is invalid",
        "Python 3.11 and pH 6.5 in 2024",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    result = scrub_text(text=text)
    assert result.text == text
    assert not result.counts


def test_no_part_of_an_ipv4_mapped_address_survives() -> None:
    assert scrub_text(text="from ::ffff:192.168.0.1 today").text == "from ::ffff:[IP] today"
    assert scrub_text(text="Connect to fe80::1.").text == "Connect to [IP]."


def test_categories_can_be_switched_off() -> None:
    text = "Mail a@b.org or call (415) 555-2671"
    options = PiiOptions(categories=frozenset({PiiCategory.PHONE}))
    assert scrub_text(text=text, options=options).text == "Mail a@b.org or call [PHONE]"


def test_without_a_region_only_international_numbers_count() -> None:
    options = PiiOptions(phone_region=None)
    assert scrub_text(text="(415) 555-2671", options=options).text == "(415) 555-2671"
    assert scrub_text(text="+1 415 555 2671", options=options).text == "[PHONE]"


def test_documents_report_counts_per_category_and_keep_offsets() -> None:
    data = (
        b"# Contact\nWrite to help@acme.example or help2@acme.example.\n\n"
        b"# Billing\nCard 4111111111111111."
    )
    result = scrub_document(document=parse_document(data=data, filename="a.md"))
    assert result.counts[PiiCategory.EMAIL] == 2
    assert result.counts[PiiCategory.CARD] == 1
    assert result.counts[PiiCategory.PHONE] == 0
    document = result.document
    assert "[EMAIL] or [EMAIL]" in document.text
    for section in document.sections:
        assert document.text[section.char_start : section.char_end] == section.text

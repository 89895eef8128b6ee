"""Amounts of money: integer cents with a currency, written one way on every page and e-mail."""

from __future__ import annotations


def format_money(cents: int, currency: str) -> str:
    """``1234, "usd"`` → ``"12.34 USD"``."""
    return f"{cents / 100:,.2f} {currency.upper()}"

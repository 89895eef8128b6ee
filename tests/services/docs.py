"""Small real documents for the document and dataset tests."""

from __future__ import annotations

import json

BEES_MD = """# Beekeeping basics

## The colony

A honey bee colony is a family of one queen, thousands of workers and a few hundred drones.
Workers build comb from wax secreted by glands on the underside of their abdomen.
The queen lays up to two thousand eggs a day in early summer when forage is plentiful.

## Varroa

Varroa is a parasitic mite that feeds on developing bees and spreads viruses in the colony.
Monitor varroa with a sugar roll or an alcohol wash every month during the active season.
Treat when more than three mites per hundred bees are found in late summer.

## Swarming

Swarming is the way a colony reproduces: the old queen leaves with about half of the workers.
Give the colony more space before it is crowded to reduce the urge to swarm in spring.
Contact the keeper at keeper@example.com or call +1 415 555 0134 for a swarm collection.
"""

TAX_MD = """# Tax notes

## Credits and deductions

A tax credit is an amount that reduces the tax owed directly, one for one.
A deduction lowers taxable income, so its value depends on the marginal tax rate.
Keep receipts for every deduction you claim for at least seven years after filing.

## Deadlines

The filing deadline is the fifteenth of April unless it falls on a weekend or holiday.
An extension gives more time to file, but not more time to pay what is owed.
Interest accrues on unpaid tax from the original due date until the balance is paid.
"""


def chat_jsonl(pairs: list[tuple[str, str]]) -> bytes:
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
        for q, a in pairs
    ]
    return ("\n".join(lines) + "\n").encode()

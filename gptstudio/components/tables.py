"""Tables: a header row of column titles, and a full-width table of one row per item."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import reflex as rx


def table_header(*titles: str) -> rx.Component:
    """A table's header row with one column title per argument."""
    return rx.table.header(rx.table.row(*[rx.table.column_header_cell(t) for t in titles]))


def data_table(
    items: rx.Var[list[Any]],
    row: Callable[[rx.Var[Any]], rx.Component],
    *,
    headers: Sequence[str] = (),
    **props: Any,
) -> rx.Component:
    """A full-width table: the ``headers`` (if any), then ``row(item)`` for each of ``items``."""
    return rx.table.root(
        *([table_header(*headers)] if headers else []),
        rx.table.body(rx.foreach(items, row)),
        width="100%",
        **props,
    )

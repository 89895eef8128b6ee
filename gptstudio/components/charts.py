"""Dashboard pieces: KPI cards and recharts line/area/bar charts whose series come from state.

The chart functions take the data (``list[dict]``, one dict per x value) and the series to draw
(``list[dict]`` with ``key``, ``name`` and ``color``) as Vars, so the number of lines or bars can
follow the data (one per currency, assistant or model version). The plain helpers (:func:`pivot`,
:func:`series`, :func:`money`) turn service results into those shapes; :func:`loss_rows`,
:func:`loss_domain` and :func:`gate_loss` do it for a training job's :func:`loss_chart`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import reflex as rx

from gptstudio.money import format_money

PALETTE = (
    "#3e63dd",
    "#e5484d",
    "#30a46c",
    "#f76b15",
    "#8e4ec6",
    "#12a594",
    "#d6409f",
    "#978365",
)
ChartKind = Literal["area", "bar", "line"]


# ---------------------------------------------------------------------------- data shaping


def money_text(amounts: Mapping[str, int]) -> str:
    """Amounts in several currencies, never added together: ``"12.00 USD · 5.00 EUR"``."""
    return " · ".join(format_money(c, cur) for cur, c in sorted(amounts.items())) or "0.00"


def series(names: Mapping[str, str]) -> list[dict[str, str]]:
    """One series per ``key → label``, each with its own colour from the palette."""
    return [
        {"key": key, "name": name, "color": PALETTE[n % len(PALETTE)]}
        for n, (key, name) in enumerate(names.items())
    ]


def pivot(
    points: Iterable[tuple[str, str, float]], *, x_values: Sequence[str], keys: Iterable[str],
    x_key: str = "x",
) -> list[dict[str, Any]]:  # fmt: skip
    """``(x, series key, value)`` triples as chart rows: one dict per x value (in the given
    order), every series key present (0 where there is no point); values of the same x and
    key are added."""
    rows: dict[str, dict[str, Any]] = {x: {x_key: x} | dict.fromkeys(keys, 0) for x in x_values}
    for x, key, value in points:
        row = rows.setdefault(x, {x_key: x})
        row[key] = row.get(key, 0) + value
    return list(rows.values())


def loss_rows(
    history: Iterable[Mapping[str, Any]], *, smoothing: float = 0.8
) -> list[dict[str, float]]:
    """A training job's reports as chart rows: one per step (a step reported twice, e.g. its
    loss and then its evaluation, is merged), with ``smoothed``, an exponential moving average
    of the training loss (bias-corrected, as TensorBoard draws it, so it starts at the first
    loss rather than at 0)."""
    by_step: dict[float, dict[str, float]] = {}
    for point in history:
        step = point.get("step")
        if not isinstance(step, (int, float)):
            continue
        row = by_step.setdefault(float(step), {"step": float(step)})
        for key in ("loss", "eval_loss", "learning_rate"):
            value = point.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                row[key] = float(value)
    rows = [by_step[step] for step in sorted(by_step)]
    average, weight = 0.0, 0.0
    for row in rows:
        if "loss" in row:
            average = smoothing * average + (1 - smoothing) * row["loss"]
            weight = smoothing * weight + (1 - smoothing)
            row["smoothed"] = round(average / weight, 5)
    return rows


def gate_loss(base_perplexity: Any, margin: float) -> float | None:
    """The held-out loss the tuned model must reach for the knowledge-gain gate: perplexity
    at least ``margin`` below the base's is a loss below ``ln(base × (1 − margin))``."""
    if not isinstance(base_perplexity, (int, float)) or not 0 < base_perplexity < math.inf:
        return None
    return math.log(base_perplexity * (1 - margin))


def loss_domain(
    rows: Sequence[Mapping[str, float]], *, threshold: float | None = None
) -> list[float]:
    """The y range that shows the losses (and the gate's line) with a little room: a fall from
    6.93 to 6.83 fills the chart instead of looking flat on an axis from 0."""
    values = [
        row[key] for row in rows for key in ("loss", "smoothed", "eval_loss") if key in row
    ] + ([threshold] if threshold is not None else [])
    if not values:
        return [0.0, 1.0]
    low, high = min(values), max(values)
    room = max((high - low) * 0.1, 0.01)
    return [round(low - room, 3), round(high + room, 3)]


# ---------------------------------------------------------------------------- components


def loss_chart(
    *, data: rx.Var[list[dict[str, float]]], domain: rx.Var[list[float]],
    threshold: rx.Var[str], id: str = "loss-chart",
) -> rx.Component:  # fmt: skip
    """Training loss (faint), its smoothed curve, eval loss points and the gate's line (drawn
    only when ``threshold`` falls inside ``domain``: pass a value outside it when unknown)."""
    return rx.recharts.line_chart(
        rx.recharts.line(
            data_key="loss", stroke="#3e63dd", stroke_opacity=0.35, dot=False,
            name="training loss", is_animation_active=False,
        ),
        rx.recharts.line(
            data_key="smoothed", stroke="#3e63dd", stroke_width=2, dot=False,
            name="training loss (smoothed)", is_animation_active=False,
        ),
        rx.recharts.line(
            data_key="eval_loss", stroke="#e5484d", name="eval loss", connect_nulls=True,
            stroke_dasharray="4 2", is_animation_active=False,
        ),
        rx.recharts.reference_line(
            y=threshold, stroke="#30a46c", stroke_dasharray="6 3", if_overflow="discard",
            label="gate",
        ),
        rx.recharts.x_axis(data_key="step", type_="number", domain=["dataMin", "dataMax"]),
        rx.recharts.y_axis(domain=domain, allow_data_overflow=True, width=60),
        rx.recharts.legend(),
        rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
        rx.recharts.graphing_tooltip(),
        data=data,
        width="100%",
        height=280,
        id=id,
    )  # fmt: skip


def kpi_card(
    label: rx.Var[str] | str,
    value: rx.Var[str] | str,
    *,
    hint: rx.Var[str] | str = "",
    id: rx.Var[str] | str = "",
) -> rx.Component:
    """A headline number with its label and, underneath, what it means; each may be a Var
    (a card per item of a list in state)."""
    has_hint = isinstance(hint, rx.Var) or bool(hint)
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.heading(value, size="6", id=id, class_name="kpi-value"),
            *([rx.text(hint, size="1", color_scheme="gray")] if has_hint else []),
            spacing="1",
        ),
        min_width="11em",
        flex="1",
        class_name="kpi-card",
    )


def _series_item(kind: ChartKind, item: rx.Var[dict[str, str]], stacked: bool) -> rx.Component:
    stack = {"stack_id": "stack"} if stacked else {}
    if kind == "bar":
        return rx.recharts.bar(data_key=item["key"], name=item["name"], fill=item["color"], **stack)
    if kind == "line":
        return rx.recharts.line(
            data_key=item["key"], name=item["name"], stroke=item["color"], dot=False
        )
    return rx.recharts.area(
        data_key=item["key"], name=item["name"], stroke=item["color"], fill=item["color"],
        fill_opacity=0.35, **stack,
    )  # fmt: skip


def series_chart(
    kind: ChartKind,
    *,
    data: rx.Var[list[dict[str, Any]]] | list[dict[str, Any]],
    lines: rx.Var[list[dict[str, str]]] | list[dict[str, str]],
    x_key: str = "x",
    stacked: bool = False,
    extra: Sequence[rx.Component] = (),
    height: int = 260,
    id: str = "",
) -> rx.Component:
    """A line, area or bar chart with one series per item of ``lines``; ``extra`` adds
    children such as a reference line."""
    chart = {
        "area": rx.recharts.area_chart,
        "bar": rx.recharts.bar_chart,
        "line": rx.recharts.line_chart,
    }[kind]
    return rx.box(
        chart(
            rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
            rx.recharts.x_axis(data_key=x_key),
            rx.recharts.y_axis(),
            rx.recharts.graphing_tooltip(),
            rx.recharts.legend(),
            rx.foreach(lines, lambda item: _series_item(kind, item, stacked)),
            *extra,
            data=data,
            width="100%",
            height=height,
        ),
        id=id,
        width="100%",
        class_name="dashboard-chart",
    )


def chart_card(title: str, chart: rx.Component, *, hint: str = "") -> rx.Component:
    return rx.card(
        rx.heading(title, size="4"),
        *([rx.text(hint, size="1", color_scheme="gray")] if hint else []),
        chart,
        width="100%",
    )


def admin_totals_view(
    *,
    cards: rx.Var[list[dict[str, str]]],
    days: rx.Var[list[dict[str, Any]]],
    currencies: rx.Var[list[dict[str, str]]],
) -> rx.Component:
    """Installation totals for admins: one card per figure (``label``, ``value``, ``hint``,
    ``id``), tokens per day and revenue per day (one bar per currency) over 30 days."""
    return rx.vstack(
        rx.heading("Totals", size="5"),
        rx.flex(
            rx.foreach(
                cards, lambda c: kpi_card(c["label"], c["value"], hint=c["hint"], id=c["id"])
            ),
            wrap="wrap",
            spacing="3",
            width="100%",
        ),
        rx.grid(
            chart_card(
                "Tokens per day (30 days)",
                series_chart(
                    "area",
                    data=days,
                    x_key="day",
                    id="admin-tokens-chart",
                    lines=[{"key": "tokens", "name": "tokens", "color": PALETTE[0]}],
                ),
            ),
            chart_card(
                "Revenue per day, net of refunds (30 days)",
                series_chart(
                    "bar",
                    data=days,
                    lines=currencies,
                    x_key="day",
                    stacked=True,
                    id="admin-revenue-chart",
                ),
            ),
            columns="2",
            spacing="3",
            width="100%",
        ),
        width="100%",
        spacing="3",
        id="admin-totals",
    )

"""The loss chart's data: one row per step, a smoothed curve, a y range scaled to the losses
(and the gate's line), and the gate's loss threshold from the base perplexity."""

from __future__ import annotations

import math

import pytest

from gptstudio.components.charts import gate_loss, loss_domain, loss_rows


def test_rows_merge_a_step_reported_twice_and_smooth_the_loss() -> None:
    history = [
        {"step": 1, "loss": 6.93, "eval_loss": None, "learning_rate": 1e-4},
        {"step": 2, "loss": 6.90, "eval_loss": None, "learning_rate": 1e-4},
        {"step": 2, "loss": 6.90, "eval_loss": 6.95, "learning_rate": 1e-4},  # its evaluation
        {"step": 3, "loss": float("nan")},
        {"loss": 1.0},  # no step: not drawable
    ]
    rows = loss_rows(history)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[1]["eval_loss"] == 6.95 and "eval_loss" not in rows[0]
    assert rows[0]["smoothed"] == pytest.approx(6.93)  # bias-corrected: starts at the loss
    assert 6.90 < rows[1]["smoothed"] < 6.93
    assert "loss" not in rows[2] and "smoothed" not in rows[2]


def test_the_y_range_fits_a_small_fall_and_the_gate_line() -> None:
    rows = loss_rows([{"step": s, "loss": 6.93 - 0.01 * s} for s in range(11)])
    low, high = loss_domain(rows)
    assert 6.8 < low < 6.83 and 6.93 < high < 6.95  # not 0-8: the fall fills the chart
    low, high = loss_domain(rows, threshold=6.5)
    assert low < 6.5 < high
    assert loss_domain([]) == [0.0, 1.0]


def test_the_gate_line_is_the_base_loss_less_the_margin() -> None:
    threshold = gate_loss(1000.0, 0.05)
    assert threshold == pytest.approx(math.log(950.0))
    assert gate_loss(None, 0.05) is None and gate_loss(0, 0.05) is None
    assert gate_loss(float("inf"), 0.05) is None

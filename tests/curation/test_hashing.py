"""Canonical JSON is independent of dict and set order."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest

from gptstudio.curation.errors import InvalidParameterError
from gptstudio.curation.hashing import canonical_json, stable_id


class Colour(enum.StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Options:
    tags: frozenset[str]
    colour: Colour
    pair: tuple[int, int]


def test_equal_values_serialise_identically() -> None:
    first = {"b": 1, "a": Options(frozenset({"y", "x"}), Colour.RED, (1, 2))}
    second = {"a": Options(frozenset({"x", "y"}), Colour.RED, (1, 2)), "b": 1}
    assert canonical_json(value=first) == canonical_json(value=second)
    assert (
        canonical_json(value=first) == '{"a":{"colour":"red","pair":[1,2],"tags":["x","y"]},"b":1}'
    )


def test_stable_ids() -> None:
    assert stable_id("doc", 1, 2) == stable_id("doc", 1, 2) != stable_id("doc", 2, 1)
    assert len(stable_id("x")) == 20


def test_nan_is_refused() -> None:
    with pytest.raises(InvalidParameterError):
        canonical_json(value={"x": float("nan")})

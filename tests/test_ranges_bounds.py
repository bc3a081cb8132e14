"""Shared range checks: integer bounds and positive numbers, raising the caller's error class."""

from __future__ import annotations

import math

import pytest

from nemotron.data.errors import DataError
from nemotron.ranges import is_positive_number, require_int_in_range


@pytest.mark.parametrize("value", [1, 2.5, 1e-8])
def test_positive_numbers(value):
    assert is_positive_number(value)


@pytest.mark.parametrize("value", [0, -1, True, math.inf, math.nan, "1", None])
def test_not_positive_numbers(value):
    assert not is_positive_number(value)


def test_int_in_range_passes():
    for value in (1, 2, 4):  # both bounds are inclusive
        assert require_int_in_range("nodes", value, ValueError, minimum=1, maximum=4) is None
    assert require_int_in_range("nodes", 2, ValueError) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "nodes must be >= 1, got 0. Write e.g. nodes = 2"),
        (5, "nodes must be <= 4, got 5. Write e.g. nodes = 2"),
        (True, "nodes must be an integer, got True. Write e.g. nodes = 2"),
        (1.0, "nodes must be an integer, got 1.0. Write e.g. nodes = 2"),
    ],
)
def test_int_out_of_range_raises_the_callers_error(value, message):
    with pytest.raises(DataError) as info:
        require_int_in_range("nodes", value, DataError, minimum=1, maximum=4, fix="Write e.g. nodes = 2")
    assert str(info.value) == message


def test_no_fix_no_trailing_text():
    with pytest.raises(ValueError) as info:
        require_int_in_range("num_shards", 0, ValueError, minimum=1)
    assert str(info.value) == "num_shards must be >= 1, got 0"

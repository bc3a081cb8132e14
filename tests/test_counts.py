"""Short counts for logs and tables."""

from __future__ import annotations

import pytest

from nemotron.counts import human_count


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (950, "950"),
        (1_500, "1.5k"),
        (250_000, "250k"),
        (626_326, "626k"),
        (5_000_000, "5.0M"),
        (1.2e9, "1.2B"),
        (25e12, "25.0T"),
        (-2_500, "-2.5k"),
    ],
)
def test_human_count(n, text):
    assert human_count(n) == text

"""Short counts for logs and tables: 950, 1.5k, 250k, 5.0M, 1.2B, 3.0T."""

from __future__ import annotations


def human_count(n: float) -> str:
    """Short count: 950, 250k, 5.0M, 1.2B, 3.0T (no decimal from 100 of a unit up)."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if abs(value) >= 100 else f"{value:.1f}{unit}"
    return f"{n:g}"

"""Printing for the CLI: a Rich console for humans, plain writes for literal text and errors."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console

console = Console(highlight=False)


def fail(message: str) -> None:
    """Print a one-line error on stderr."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def columns(rows: Sequence[Sequence[str]]) -> None:
    """Plain aligned columns (like squeue): nothing is truncated in pipes or narrow terminals."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        # `widths` covers all but the last cell, which is written unpadded after the zip.
        literal("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def literal(text: str) -> None:
    """Write text exactly as is (scripts, YAML, logs): no wrapping, no markup."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()

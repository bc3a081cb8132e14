"""Printing for the CLI: a Rich console for humans, plain writes for literal text and errors."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(highlight=False)


def fail(message: str) -> None:
    """Print a one-line error on stderr."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def literal(text: str) -> None:
    """Write text exactly as is (scripts, YAML, logs): no wrapping, no markup."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()

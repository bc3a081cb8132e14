"""The root of every error nemotron reports as one line, and the one place that reports it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NemotronError(Exception):
    """An error whose message says what went wrong, where, and the fix: shown as one `error:` line."""


def run_reporting_errors(main: Callable[[], T], exit_code: int) -> T:
    """Call `main`; a NemotronError (any package's) ends the process as one `error:` line and `exit_code`.

    The CLI (exit code 2) and every stage entry point (exit code 1) go through here, so both
    report the same set of errors; anything else is a bug and keeps its traceback.
    """
    try:
        return main()
    except NemotronError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(exit_code)

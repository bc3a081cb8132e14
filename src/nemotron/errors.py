"""The root of every error nemotron reports as one line, and the one place that reports it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")


class NemotronError(Exception):
    """An error whose message says what went wrong, where, and the fix: shown as one `error:` line."""


def run_reporting_errors(main: Callable[[], T], exit_code: int) -> T:
    """Call `main`; a NemotronError (any package's) ends the process as one `error:` line and `exit_code`.

    The CLI (exit code 2) and every stage entry point (exit code 1) go through here, so both
    report the same set of errors; so is an OSError of a folder that refuses writes (read-only,
    full) that no caller explained (see storage_errors.py). Anything else is a bug and keeps its traceback.
    """
    try:
        return main()
    except NemotronError as err:
        _report(str(err), exit_code)
    except OSError as err:
        from nemotron.storage_errors import STORAGE_ERRNOS, unexplained_storage_failure

        if err.errno not in STORAGE_ERRNOS:
            raise
        _report(unexplained_storage_failure(err), exit_code)


def _report(message: str, exit_code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(exit_code)

"""SIGTERM handled like Ctrl-C while a command follows a job it started, so the job is cancelled, not orphaned."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt, so the same code cleans up after either."""


def interrupt_exit_code(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit status for the signal: 143 for SIGTERM, 130 for Ctrl-C (SIGINT)."""
    return 128 + signal.SIGTERM if isinstance(interrupt, Terminated) else 128 + signal.SIGINT


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises Terminated in the main thread; the previous handler is back afterwards."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

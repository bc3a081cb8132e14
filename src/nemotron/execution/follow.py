"""Stream a job's log until it ends, and return its final state."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from nemotron.execution.log_reader import LogCursor
from nemotron.execution.records import JobRecord
from nemotron.execution.states import JobState

if TYPE_CHECKING:
    from nemotron.execution.local_backend import LocalBackend
    from nemotron.execution.slurm_backend import SlurmJobControl


def follow(
    control: LocalBackend | SlurmJobControl, record: JobRecord, out: TextIO = sys.stdout, poll_seconds: float = 1.0
) -> JobState:
    """Print new log text as it appears; stop once the job is in a final state and the log is drained."""
    cursor: LogCursor = {}
    unknown_since: float | None = None
    while True:
        state = control.status(record)
        text, cursor = control.read_log(record, cursor)
        if text:
            out.write(text)
            out.flush()
        if state.is_terminal:
            text, cursor = control.read_log(record, cursor)  # whatever was written as it ended
            if text:
                out.write(text)
                out.flush()
            return state
        if state is JobState.UNKNOWN:  # accounting can lag behind a fresh submission
            unknown_since = unknown_since or time.monotonic()
            if time.monotonic() - unknown_since > 120:
                return JobState.UNKNOWN
        else:
            unknown_since = None
        time.sleep(poll_seconds)

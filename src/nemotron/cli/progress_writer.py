"""Show a job's `progress: i/n ...` log lines as one redrawn progress bar on a terminal."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from nemotron.execution.local_backend import LocalBackend
    from nemotron.execution.records import JobRecord
    from nemotron.execution.slurm_backend import SlurmJobControl
    from nemotron.execution.states import JobState

PROGRESS = re.compile(r"^progress: (\d+)/(\d+) (\w+), (.*)$")
BAR_WIDTH = 24


def follow_to_stdout(control: LocalBackend | SlurmJobControl, record: JobRecord) -> JobState:
    """Stream a job's log to stdout (progress lines as a bar on a terminal) until it ends; its state."""
    import sys

    from nemotron.execution.follow import follow

    writer = ProgressAwareWriter(sys.stdout)
    # a local job's end is seen within 0.25 s (a pipe then starts its next stage); Slurm is asked once a second
    poll = 0.25 if record.backend == "local" else 1.0
    # follow() only calls write/flush, which ProgressAwareWriter has; it is not a full TextIO.
    state = follow(control, record, out=writer, poll_seconds=poll)  # type: ignore[arg-type]
    writer.close()
    return state


class ProgressAwareWriter:
    """A text sink for `follow`: plain pass-through, except progress lines on a TTY become a bar."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.pending = ""  # a partial line not yet terminated by a newline
        self.bar_shown = False

    def write(self, text: str) -> None:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            match = PROGRESS.match(line) if self.tty else None
            if match:
                self._bar(int(match.group(1)), int(match.group(2)), match.group(3), match.group(4))
            else:
                self._clear()
                self.out.write(line + "\n")

    def flush(self) -> None:
        if self.pending and not self.tty:
            self.out.write(self.pending)
            self.pending = ""
        self.out.flush()

    def close(self) -> None:
        """End the bar's line and write any unterminated text."""
        if self.bar_shown:
            self.out.write("\n")
            self.bar_shown = False
        if self.pending:
            self.out.write(self.pending + "\n")
            self.pending = ""
        self.out.flush()

    def _bar(self, done: int, total: int, unit: str, rest: str) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        self.out.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {unit} · {rest}\033[K")
        self.bar_shown = True

    def _clear(self) -> None:
        if self.bar_shown:
            self.out.write("\r\033[K")
            self.bar_shown = False

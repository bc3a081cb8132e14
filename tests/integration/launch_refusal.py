"""What the CLI tests read of a run refused at launch: its one `error:` line."""

from __future__ import annotations

import subprocess


def rejected(done: subprocess.CompletedProcess) -> str:
    """The one `error:` line of a run refused at launch."""
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "submitted" not in output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]

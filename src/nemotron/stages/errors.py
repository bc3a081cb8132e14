"""The root of errors a stage entry point raises itself (not from config, data, artifacts or training)."""

from __future__ import annotations

from nemotron.errors import NemotronError


class StageFailure(NemotronError):
    """A stage ended for a reason its message explains fully: one `error:` line, exit code 1."""

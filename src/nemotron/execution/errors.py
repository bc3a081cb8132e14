"""The root of errors raised when a job cannot be submitted, found or controlled."""

from __future__ import annotations

from nemotron.errors import NemotronError


class ExecutionError(NemotronError):
    """Submission or job control failed; the message says what and how to fix it."""

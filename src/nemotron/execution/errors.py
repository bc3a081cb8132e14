"""The error raised when a job cannot be submitted, found or controlled."""


class ExecutionError(Exception):
    """Submission or job control failed; the message says what and how to fix it."""

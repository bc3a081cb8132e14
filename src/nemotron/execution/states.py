"""Job states common to every backend, and how a final state becomes an exit code."""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    LOST = "LOST"  # the process vanished without recording an outcome
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN)

    @property
    def exit_code(self) -> int:
        """0 only for COMPLETED; every other final state is a failure."""
        return 0 if self is JobState.COMPLETED else 1


_SLURM_ALIASES = {
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESIZING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "DEADLINE": JobState.TIMEOUT,
    "REVOKED": JobState.CANCELLED,
    "SPECIAL_EXIT": JobState.FAILED,
}


def from_slurm(text: str) -> JobState:
    """Map a Slurm state (`CANCELLED by 0`, `COMPLETED`, `CD`...) onto JobState."""
    word = text.strip().split(" ")[0].rstrip("+").upper()
    short = {
        "PD": "PENDING",
        "R": "RUNNING",
        "CD": "COMPLETED",
        "F": "FAILED",
        "CA": "CANCELLED",
        "TO": "TIMEOUT",
        "OOM": "OUT_OF_MEMORY",
        "NF": "NODE_FAIL",
        "PR": "PREEMPTED",
        "CG": "COMPLETING",
        "CF": "CONFIGURING",
        "S": "SUSPENDED",
        "RQ": "REQUEUED",
    }
    word = short.get(word, word)
    if word in JobState.__members__:
        return JobState[word]
    return _SLURM_ALIASES.get(word, JobState.UNKNOWN)

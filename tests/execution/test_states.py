"""JobState: mapping Slurm's state words onto common states, and the exit code of a final state."""

from __future__ import annotations

import pytest

from nemotron.execution.states import JobState, from_slurm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED by 12345", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("CA", JobState.CANCELLED),
        ("COMPLETED", JobState.COMPLETED),
        ("CD", JobState.COMPLETED),
        ("  completed \n", JobState.COMPLETED),
        ("TIMEOUT", JobState.TIMEOUT),
        ("TO", JobState.TIMEOUT),
        ("DEADLINE", JobState.TIMEOUT),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("OOM", JobState.OUT_OF_MEMORY),
        ("NODE_FAIL", JobState.NODE_FAIL),
        ("NF", JobState.NODE_FAIL),
        ("BOOT_FAIL", JobState.NODE_FAIL),
        ("FAILED", JobState.FAILED),
        ("F", JobState.FAILED),
        ("SPECIAL_EXIT", JobState.FAILED),
        ("PREEMPTED", JobState.PREEMPTED),
        ("REQUEUED", JobState.PENDING),
        ("RQ", JobState.PENDING),
        ("REQUEUE_HOLD", JobState.PENDING),
        ("PENDING", JobState.PENDING),
        ("PD", JobState.PENDING),
        ("CONFIGURING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("R", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("CG", JobState.RUNNING),
        ("SUSPENDED", JobState.RUNNING),
        ("REVOKED", JobState.CANCELLED),
        ("garbage", JobState.UNKNOWN),
        ("", JobState.UNKNOWN),
        ("   ", JobState.UNKNOWN),
        ("LOSTT", JobState.UNKNOWN),
        ("123", JobState.UNKNOWN),
    ],
)
def test_from_slurm(text, expected):
    assert from_slurm(text) is expected


@pytest.mark.parametrize("state", list(JobState))
def test_exit_code_is_zero_only_for_completed(state):
    assert state.exit_code == (0 if state is JobState.COMPLETED else 1)


def test_terminal_states():
    assert {s for s in JobState if not s.is_terminal} == {JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN}
    assert JobState.LOST.is_terminal and JobState.CANCELLED.is_terminal


def test_states_are_strings():
    assert JobState("COMPLETED") is JobState.COMPLETED
    assert JobState.FAILED == "FAILED"

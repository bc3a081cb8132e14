"""A requeued Slurm job is followed, not reported failed: states across a requeue, and every run's log in order."""

from __future__ import annotations

import io

import pytest

from nemotron.execution.follow import follow
from nemotron.execution.records import JobRecord
from nemotron.execution.slurm_backend import SlurmJobControl
from nemotron.execution.slurm_commands import CommandResult, SlurmClient
from nemotron.execution.states import JobState


class FakeShell:
    """Answers sacct/squeue/ls from scripted values; records the commands."""

    def __init__(self, sacct: list[str], squeue: list[str] | None = None, logs: str = "") -> None:
        self.sacct, self.squeue, self.logs = list(sacct), list(squeue or []), logs
        self.commands: list[str] = []

    def run(self, command: str) -> CommandResult:
        self.commands.append(command)
        if command.startswith("sacct"):
            state = self.sacct.pop(0) if len(self.sacct) > 1 else self.sacct[0]
            return CommandResult(0, f"42|{state}\n" if state else "", "")
        if command.startswith("squeue"):
            state = self.squeue.pop(0) if len(self.squeue) > 1 else (self.squeue[0] if self.squeue else "")
            return CommandResult(0, f"{state}\n" if state else "", "")
        if "ls -1" in command:
            return CommandResult(0, self.logs, "")
        return CommandResult(0, "", "")


def record() -> JobRecord:
    return JobRecord(
        name="job",
        stage="test/stage",
        backend="slurm",
        profile="p",
        job_id="42",
        submitted_at="2026-11-22T10:00:00",
        job_dir="/jobs/job",
        log_dir="/jobs/job/logs",
        details={},
    )


def control(shell: FakeShell) -> SlurmJobControl:
    c = SlurmJobControl(record())
    c.shell = shell
    c.client = SlurmClient(shell)
    return c


@pytest.mark.parametrize("sacct", ["REQUEUED", "REQUEUE_HOLD", "PENDING"])
def test_requeued_job_is_pending(sacct):
    assert control(FakeShell([sacct])).status(record()) is JobState.PENDING


@pytest.mark.parametrize(
    ("sacct", "queue", "expected"),
    [
        ("PREEMPTED", "PENDING", JobState.PENDING),  # preempted with PreemptMode=REQUEUE: back in the queue
        ("NODE_FAIL", "REQUEUED", JobState.PENDING),
        ("FAILED", "RUNNING", JobState.RUNNING),  # accounting still shows the ended run
        ("PREEMPTED", "", JobState.PREEMPTED),  # gone from the queue: it really ended
        ("FAILED", "", JobState.FAILED),
        ("CANCELLED by 0", "COMPLETING", JobState.CANCELLED),
        ("TIMEOUT", "TIMEOUT", JobState.TIMEOUT),
    ],
)
def test_ended_state_is_checked_against_the_queue(sacct, queue, expected):
    assert control(FakeShell([sacct], [queue])).status(record()) is expected


def test_completed_and_running_jobs_do_not_ask_the_queue():
    for state in ("COMPLETED", "RUNNING"):
        shell = FakeShell([state])
        control(shell).status(record())
        assert not any(c.startswith("squeue") for c in shell.commands)


def test_follow_goes_on_through_a_requeue():
    shell = FakeShell(["RUNNING", "REQUEUED", "PENDING", "PENDING", "RUNNING", "COMPLETED"])
    assert follow(control(shell), record(), io.StringIO(), poll_seconds=0) is JobState.COMPLETED


def test_logs_of_every_restart_in_order():
    names = [f"log-job_42_{n}.out" for n in (0, 1, 2, 9, 10, 11)]
    shell = FakeShell(["COMPLETED"], logs="\n".join(sorted(names)))  # `ls` sorts 10 before 2
    assert control(shell).log_paths(record()) == [f"/jobs/job/logs/{n}" for n in names]

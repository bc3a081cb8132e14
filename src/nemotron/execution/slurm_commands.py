"""Ask Slurm about jobs (sacct/squeue), cancel them and read their logs, on this host or over SSH."""

from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
from dataclasses import dataclass

from nemotron.execution.errors import ExecutionError
from nemotron.execution.states import JobState, from_slurm


@dataclass(frozen=True)
class CommandResult:
    code: int
    stdout: str
    stderr: str


class LocalShell:
    """Runs Slurm client commands on this machine."""

    def run(self, command: str) -> CommandResult:
        try:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"timed out: {command}")
        return CommandResult(done.returncode, done.stdout, done.stderr)


class SSHShell:
    """Runs Slurm client commands on a login node through NeMo-Run's SSH tunnel."""

    def __init__(self, host: str, user: str, identity: str | None, port: int) -> None:
        from nemotron.execution.nemo_run_import import import_nemo_run

        run = import_nemo_run()
        self.tunnel = run.SSHTunnel(host=host, user=user, identity=identity, port=port, job_dir="")

    def run(self, command: str) -> CommandResult:
        with contextlib.redirect_stdout(io.StringIO()):  # NeMo-Run prints "Connecting to ..."
            result = self.tunnel.run(command, hide=True, warn=True)
        return CommandResult(result.return_code, result.stdout, result.stderr)


class SlurmClient:
    """Job state, cancellation and log reading for Slurm jobs, through a shell (local or SSH)."""

    def __init__(self, shell: LocalShell | SSHShell) -> None:
        self.shell = shell

    def state(self, job_id: str) -> JobState:
        """The job's state from accounting (sacct), falling back to the queue (squeue)."""
        quoted = shlex.quote(job_id)
        result = self.shell.run(f"sacct -j {quoted} -X -n -P --format=JobID,State")
        states = [
            from_slurm(parts[1])
            for parts in (line.split("|") for line in result.stdout.splitlines())
            if len(parts) >= 2 and _of_job(parts[0], job_id)
        ]
        if states:
            return combined_state(states)
        queue = self.shell.run(f"squeue -h -j {quoted} -o %T")
        if queue.code == 0 and queue.stdout.strip():
            return from_slurm(queue.stdout.strip().splitlines()[0])
        return JobState.UNKNOWN

    def run_span(self, job_ids: list[str]) -> float | None:
        """Seconds from the first of these jobs' (and their array tasks') start to the last one's end, from
        accounting; None while one has not ended or when sacct knows none of them."""
        from datetime import datetime

        quoted = shlex.quote(",".join(job_ids))
        result = self.shell.run(f"sacct -j {quoted} -X -n -P --format=JobID,Start,End")
        starts, ends = [], []
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) < 3 or not any(_of_job(parts[0], job_id) for job_id in job_ids):
                continue
            try:
                start, end = datetime.fromisoformat(parts[1]), datetime.fromisoformat(parts[2])
            except ValueError:  # Unknown / None: not started or not ended
                if parts[1] not in ("None", "Unknown"):  # cancelled while pending has no start: no time
                    return None
                continue
            starts.append(start)
            ends.append(end)
        if not starts:
            return None
        return (max(ends) - min(starts)).total_seconds()

    def cancel(self, job_id: str) -> None:
        result = self.shell.run(f"scancel {shlex.quote(job_id)}")
        if result.code != 0:
            raise ExecutionError(f"scancel {job_id} failed: {result.stderr.strip() or result.stdout.strip()}")

    def list_files(self, directory: str, pattern: str) -> list[str]:
        result = self.shell.run(f"cd {shlex.quote(directory)} 2>/dev/null && ls -1 {pattern} 2>/dev/null || true")
        return sorted(f"{directory}/{name}" for name in result.stdout.split())

    def read(self, path: str, offset: int) -> tuple[str, int]:
        """Bytes appended to `path` after `offset`, decoded; ('' , offset) when there are none."""
        result = self.shell.run(f"tail -c +{offset + 1} {shlex.quote(path)} 2>/dev/null || true")
        data = result.stdout
        return data, offset + len(data.encode("utf-8", errors="replace"))


def _of_job(accounted_id: str, job_id: str) -> bool:
    """Whether a JobID column of sacct names `job_id` itself or one of its array tasks (`<job_id>_<index>`)."""
    return accounted_id == job_id or accounted_id.startswith(f"{job_id}_")


def combined_state(states: list[JobState]) -> JobState:
    """One state for a job array: a failure wins, then running, then pending; else all completed."""
    failures = [s for s in states if s.is_terminal and s is not JobState.COMPLETED]
    if failures:
        return failures[0]
    for state in (JobState.RUNNING, JobState.UNKNOWN, JobState.PENDING):
        if state in states:
            return state
    return JobState.COMPLETED

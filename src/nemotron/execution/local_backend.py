"""Run a stage job as a local process (attached or detached) and track it through files in its job dir."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path

from nemotron.config.job_files import CONFIG_FILE, write_job_files
from nemotron.execution.errors import ExecutionError
from nemotron.execution.job import StageJob
from nemotron.execution.job_env import write_secrets_file
from nemotron.execution.log_reader import LogCursor, read_new
from nemotron.execution.records import JobRecord, jobs_root, save_record, writing_job_folder
from nemotron.execution.states import JobState
from nemotron.processes import boot_id, pid_alive, start_time

LOG_FILE = "job.log"
EXIT_FILE = "exit_code"
CANCELLED_FILE = "cancelled"
# Kept in JobRecord.details with the pid: which process the pid named when the job started. A pid is
# reused once its process is gone; it is this job's only while both still match (see `_pid_owner`).
PID_START_TIME = "pid_start_time"  # field 22 of /proc/<pid>/stat: clock ticks after boot
BOOT_ID = "boot_id"  # /proc/sys/kernel/random/boot_id: start times count from this boot


class LocalBackend:
    """Each job is a process group running the stage's entry point with this interpreter."""

    name = "local"

    def __init__(
        self,
        profile_name: str | None = None,
        python: str | None = None,
        setup: tuple[str, ...] = (),
        nproc_per_node: int = 1,
        env_vars: dict[str, str] | None = None,
    ):
        self.profile_name = profile_name
        self.python = python or sys.executable
        self.setup = setup
        self.nproc_per_node = nproc_per_node  # > 1: distributed stages run under torchrun
        self.env_vars = env_vars or {}  # the profile's public env_vars

    def submit(self, job: StageJob) -> JobRecord:
        job_dir = jobs_root() / job.name
        with writing_job_folder(job_dir):
            config_path, _ = write_job_files(job_dir, job.config, job.provenance)
            secrets = write_secrets_file(job_dir, job.secret_env)
        command = shlex.join(job.command(self.python, str(config_path), self.nproc_per_node))
        # The wrapper records the exit code atomically so `jobs status` knows the outcome later.
        inner = "\n".join(
            ["export NEMOTRON_JOB_ID=$$", f". {shlex.quote(str(secrets))}", *self.setup, f"exec {command}"]
        )
        script = "\n".join(
            [
                f"( set -e\n{inner}\n) > {LOG_FILE} 2>&1",  # setup failures land in the log too
                "code=$?",
                f'{{ echo "$code" > {EXIT_FILE}.tmp && mv {EXIT_FILE}.tmp {EXIT_FILE}; }} || rm -f {EXIT_FILE}.tmp',
            ]
        )
        # values reach the job through the process environment, never through the script's text
        env = {**os.environ, **self.env_vars, **job.env, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=job_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        record = JobRecord(
            name=job.name,
            stage=job.stage,
            backend=self.name,
            profile=self.profile_name,
            job_id=str(process.pid),
            submitted_at=datetime.now().isoformat(timespec="seconds"),
            job_dir=str(job_dir),
            log_dir=str(job_dir),
            details={"config": str(job_dir / CONFIG_FILE), **process_identity(process.pid)},
        )
        save_record(record)
        return record

    def status(self, record: JobRecord) -> JobState:
        job_dir = Path(record.job_dir)
        if (job_dir / CANCELLED_FILE).exists():
            return JobState.CANCELLED
        exit_file = job_dir / EXIT_FILE
        if exit_file.exists():
            return JobState.COMPLETED if exit_file.read_text().strip() == "0" else JobState.FAILED
        owner, _ = _pid_owner(record)
        if owner is _Owner.OURS:
            return JobState.RUNNING
        if exit_file.exists():  # it finished between the two checks above
            return self.status(record)
        # A live pid that cannot be checked (a record from before start times were kept) may be the
        # job or a process that reused its pid: neither RUNNING nor LOST can be said.
        return JobState.UNKNOWN if owner is _Owner.UNVERIFIED else JobState.LOST

    def cancel(self, record: JobRecord) -> None:
        """SIGTERM the job's process group, only while its pid still names the job's own process."""
        state = self.status(record)
        if state in (JobState.LOST, JobState.UNKNOWN):
            _, why = _pid_owner(record)
            raise ExecutionError(f"job {record.name} not cancelled: {why}; nothing was killed")
        if state.is_terminal:
            raise ExecutionError(f"job {record.name} already ended ({state.value})")
        (Path(record.job_dir) / CANCELLED_FILE).write_text(datetime.now().isoformat() + "\n")
        try:
            os.killpg(int(record.job_id), signal.SIGTERM)
        except ProcessLookupError:
            pass

    def read_log(self, record: JobRecord, cursor: LogCursor) -> tuple[str, LogCursor]:
        return read_new(self.log_paths(record), cursor)

    def log_paths(self, record: JobRecord) -> list[str]:
        return [str(Path(record.log_dir) / LOG_FILE)]


def process_identity(pid: int) -> dict[str, str]:
    """What tells the process `pid` apart from a later one given the same pid; {} without /proc."""
    start, boot = start_time(pid), boot_id()
    if start is None or boot is None:
        return {}
    return {PID_START_TIME: start, BOOT_ID: boot}


class _Owner(Enum):
    OURS = "ours"  # the recorded process, still running
    GONE = "gone"  # no such process, or the pid now names another one
    UNVERIFIED = "unverified"  # a live process, but the record has nothing to check it against


def _pid_owner(record: JobRecord) -> tuple[_Owner, str]:
    """Whether the record's pid still names the job's own process, and why not when it does not."""
    pid = int(record.job_id)
    gone = f"its process (pid {pid}) is gone (state {JobState.LOST.value})"
    if not pid_alive(pid):
        return _Owner.GONE, gone
    start, boot = record.details.get(PID_START_TIME), record.details.get(BOOT_ID)
    if start is None or boot is None:
        return _Owner.UNVERIFIED, (
            f"pid {pid} is alive but cannot be verified as this job's process: the job's record has no "
            f"process start time (written by an older nemotron, or where /proc is missing). "
            f"Check with `ps -o pid,lstart,args -p {pid}`; if it is this job, stop it with `kill -TERM -- -{pid}`"
        )
    now_boot, now_start = boot_id(), start_time(pid)
    if now_boot is None or now_start is None:
        if not pid_alive(pid):  # it ended while we looked
            return _Owner.GONE, gone
        return _Owner.UNVERIFIED, f"pid {pid} is alive but its start time cannot be read from /proc"
    if now_boot != boot:
        return _Owner.GONE, f"{gone}: the machine has restarted since, and pid {pid} now belongs to another process"
    if now_start != start:
        return _Owner.GONE, f"{gone} and pid {pid} now belongs to another process"
    return _Owner.OURS, ""

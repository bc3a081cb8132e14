"""Run a stage job as a local process (attached or detached) and track it through files in its job dir."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from nemotron.config.job_files import CONFIG_FILE, write_job_files
from nemotron.execution.errors import ExecutionError
from nemotron.execution.job import StageJob
from nemotron.execution.job_env import write_secrets_file
from nemotron.execution.log_reader import LogCursor, read_new
from nemotron.execution.records import JobRecord, jobs_root, save_record
from nemotron.execution.states import JobState

LOG_FILE = "job.log"
EXIT_FILE = "exit_code"
CANCELLED_FILE = "cancelled"


class LocalBackend:
    """Each job is a process group running the stage's entry point with this interpreter."""

    name = "local"

    def __init__(
        self,
        profile_name: str | None = None,
        python: str | None = None,
        setup: tuple[str, ...] = (),
        nproc_per_node: int = 1,
    ):
        self.profile_name = profile_name
        self.python = python or sys.executable
        self.setup = setup
        self.nproc_per_node = nproc_per_node  # > 1: distributed stages run under torchrun

    def submit(self, job: StageJob) -> JobRecord:
        job_dir = jobs_root() / job.name
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
                f'echo "$code" > {EXIT_FILE}.tmp && mv {EXIT_FILE}.tmp {EXIT_FILE}',
            ]
        )
        env = {**os.environ, **job.env, "PYTHONUNBUFFERED": "1"}
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
            details={"config": str(job_dir / CONFIG_FILE)},
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
        if _alive(int(record.job_id)):
            return JobState.RUNNING
        if exit_file.exists():  # it finished between the two checks above
            return self.status(record)
        return JobState.LOST

    def cancel(self, record: JobRecord) -> None:
        if self.status(record).is_terminal:
            raise ExecutionError(f"job {record.name} already ended ({self.status(record).value})")
        (Path(record.job_dir) / CANCELLED_FILE).write_text(datetime.now().isoformat() + "\n")
        try:
            os.killpg(int(record.job_id), signal.SIGTERM)
        except ProcessLookupError:
            pass

    def read_log(self, record: JobRecord, cursor: LogCursor) -> tuple[str, LogCursor]:
        return read_new(self.log_paths(record), cursor)

    def log_paths(self, record: JobRecord) -> list[str]:
        return [str(Path(record.log_dir) / LOG_FILE)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True

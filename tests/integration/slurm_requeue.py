"""Helpers of the Slurm requeue tests: submit with --batch, send the time-limit warning, read both runs' logs."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOPPED = re.compile(r"stop requested \(.*SIGUSR1.*\) after step (\d+)")


def logs_text(job_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((job_dir / "logs").glob("log-*.out")))


def wait_until(predicate: Any, what: str, timeout: float = 360) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@dataclass(frozen=True)
class RequeuedJob:
    """A job that got SIGUSR1 once: its final state line, the logs of its two runs, the step the first stopped at."""

    status: str
    first: str
    second: str
    log_count: int
    stopped: int | None


def warn_once_and_wait(run_cli: Any, submitted: Any, nemotron_home: Path, marker: str) -> RequeuedJob:
    """Once the job's log shows `marker`, send the time-limit warning (`scancel --signal=USR1`) and wait for the end."""
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    name, job_id = re.search(r"submitted (\S+) as Slurm job (\d+)", " ".join(submitted.stdout.split())).groups()
    job_dir = nemotron_home / "jobs" / name
    try:
        wait_until(lambda: marker in logs_text(job_dir), marker)
        subprocess.run(["scancel", "--signal=USR1", job_id], check=True, timeout=60)
        done = run_cli("jobs", "status", name, "--wait", timeout=600)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
    logs = sorted((job_dir / "logs").glob("log-*.out"))
    first, second = (p.read_text() for p in logs[-2:]) if len(logs) >= 2 else (logs_text(job_dir), "")
    stopped = STOPPED.search(first)
    return RequeuedJob(
        status=done.stdout.strip().split("\t")[-1],
        first=first,
        second=second,
        log_count=len(logs),
        stopped=int(stopped.group(1)) if stopped else None,
    )

"""Job records: what was submitted where, saved so `nemotron jobs` works after the CLI exits."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nemotron.atomic_write import write_text_atomic
from nemotron.execution.errors import ExecutionError
from nemotron.paths import nemotron_home
from nemotron.storage_errors import storage_errors

RECORD_FILE = "record.json"


@dataclass(frozen=True)
class JobRecord:
    """One submitted job. `job_id` is the Slurm job id or, for local jobs, the process id."""

    name: str
    stage: str
    backend: str  # "local" | "slurm" | "docker"
    profile: str | None
    job_id: str
    submitted_at: str
    job_dir: str  # where job.yaml/config.yaml live (on the cluster for Slurm)
    log_dir: str  # where the job's logs are written
    details: dict[str, str] = field(default_factory=dict)  # backend specifics (ssh host, experiment id)


def jobs_root() -> Path:
    return nemotron_home() / "jobs"


def writing_job_folder(job_dir: Path) -> AbstractContextManager[None]:
    """Report a job folder that cannot be written (NEMOTRON_HOME read-only or full) as one line."""
    return storage_errors("the job folder", job_dir, "NEMOTRON_HOME")


def save_record(record: JobRecord) -> Path:
    directory = jobs_root() / record.name
    with writing_job_folder(directory):
        directory.mkdir(parents=True, exist_ok=True)
        write_text_atomic(directory / RECORD_FILE, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
    return directory / RECORD_FILE


def list_records() -> list[JobRecord]:
    """All recorded jobs, newest first."""
    root = jobs_root()
    if not root.is_dir():
        return []
    records = []
    for path in root.glob(f"*/{RECORD_FILE}"):
        try:
            records.append(JobRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # a record being written or from another version; `jobs list` shows the rest
    return sorted(records, key=lambda r: (r.submitted_at, r.name), reverse=True)


def find_record(key: str) -> JobRecord:
    """The job whose name or job id is `key`; an error lists recent jobs when none matches."""
    records = list_records()
    for record in records:
        if key in (record.name, record.job_id):
            return record
    recent = ", ".join(f"{r.name} ({r.job_id})" for r in records[:5]) or "none"
    raise ExecutionError(f"no job named or numbered {key!r} in {jobs_root()}; recent jobs: {recent}")

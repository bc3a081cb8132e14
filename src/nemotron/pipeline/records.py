"""Pipe records: the stages of one `pipe` command, their fingerprints, jobs and artifacts, kept after it exits."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from nemotron.atomic_write import write_text_atomic
from nemotron.errors import NemotronError
from nemotron.paths import nemotron_home
from nemotron.storage_errors import storage_errors

RECORD_FILE = "pipe.json"


@dataclass(frozen=True)
class PipeStageRecord:
    """One stage of a recorded pipe: what the plan said and what happened."""

    name: str
    stage: str  # nano3/sft
    fingerprint: str
    action: str  # run | skip | off
    reason: str
    state: str = "planned"  # planned | skipped | submitted | COMPLETED | FAILED | ... | not run
    job: str | None = None  # the job's name (nemotron jobs ...)
    artifact: str | None = None  # name:vN published or reused
    seconds: float | None = None  # the stage's job from its start to its end
    orchestration: float | None = None  # the pipe's own time around it: launch checks, submission, following
    log: str | None = None
    output: str | None = None  # the reference its output is found by (name:fp-<fingerprint>, or name:vN)


@dataclass(frozen=True)
class PipeRecord:
    """One `pipe` command: its config, where it ran, the code identity of its fingerprints and its stages."""

    name: str
    config: str
    profile: str | None
    backend: str  # local | slurm
    started_at: str
    code: str
    argv: tuple[str, ...]
    stages: tuple[PipeStageRecord, ...] = field(default_factory=tuple)

    def with_stage(self, stage: PipeStageRecord) -> PipeRecord:
        """This record with `stage` replacing the stage of the same name."""
        return replace(self, stages=tuple(stage if s.name == stage.name else s for s in self.stages))

    def stage(self, name: str) -> PipeStageRecord:
        return next(s for s in self.stages if s.name == name)


def pipes_root() -> Path:
    return nemotron_home() / "pipes"


def save_pipe_record(record: PipeRecord) -> Path:
    path = pipes_root() / record.name / RECORD_FILE
    with storage_errors("the pipe record", path.parent, "NEMOTRON_HOME"):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
    return path


def load_pipe_record(path: Path) -> PipeRecord:
    data = json.loads(path.read_text())
    stages = tuple(PipeStageRecord(**stage) for stage in data.pop("stages", []))
    return PipeRecord(**{**data, "argv": tuple(data.get("argv", ())), "stages": stages})


def list_pipe_records() -> list[PipeRecord]:
    """All recorded pipes, newest first (unreadable records are left out)."""
    root = pipes_root()
    records = []
    for path in root.glob(f"*/{RECORD_FILE}") if root.is_dir() else ():
        try:
            records.append(load_pipe_record(path))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(records, key=lambda r: (r.started_at, r.name), reverse=True)


def find_pipe_record(key: str) -> PipeRecord:
    """The pipe named `key`; an error lists recent pipes when none matches."""
    records = list_pipe_records()
    for record in records:
        if record.name == key:
            return record
    recent = ", ".join(r.name for r in records[:5]) or "none"
    raise NemotronError(f"no pipe named {key!r} in {pipes_root()}; recent pipes: {recent}")


IN_FLIGHT = frozenset({"submitted", "PENDING", "RUNNING", "UNKNOWN"})  # a stage's job may still run
_NOT_FAILED = IN_FLIGHT | {"planned", "skipped", "not selected", "not run", "COMPLETED"}


def last_failure(records: list[PipeRecord], fingerprint: str) -> tuple[PipeRecord, PipeStageRecord] | None:
    """The newest pipe whose stage with `fingerprint` ended in failure, and that stage (None: never failed)."""
    for record in records:
        for stage in record.stages:
            if stage.fingerprint == fingerprint and stage.state not in _NOT_FAILED:
                return record, stage
    return None


def in_flight(records: list[PipeRecord], fingerprint: str) -> tuple[PipeRecord, PipeStageRecord] | None:
    """A pipe whose stage with `fingerprint` has a job that may still run (as last recorded), and that stage."""
    for record in records:
        for stage in record.stages:
            if stage.fingerprint == fingerprint and stage.job and stage.state in IN_FLIGHT:
                return record, stage
    return None

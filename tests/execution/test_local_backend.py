"""LocalBackend: real detached jobs of the tiny data-prep stage, followed, failed, cancelled, with secrets."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from nemotron.artifacts import FileRegistry, default_registry_root
from nemotron.execution.errors import ExecutionError
from nemotron.execution.follow import follow
from nemotron.execution.launcher import LaunchRequest, control_for, prepare
from nemotron.execution.local_backend import LocalBackend
from nemotron.execution.records import find_record, jobs_root
from nemotron.execution.states import JobState
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN

pytestmark = pytest.mark.integration

SECRET = "s3cret-value"


def tiny_job(*overrides: str):
    return prepare(LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", tuple(overrides), None, ())).job


def run_to_end(backend: LocalBackend, job, timeout: float = 120) -> tuple[JobState, str, object]:
    record = backend.submit(job)
    out = io.StringIO()
    started = time.monotonic()
    state = follow(backend, record, out, poll_seconds=0.1)
    assert time.monotonic() - started < timeout
    return state, out.getvalue(), record


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_tiny_job_completes_and_publishes(nemotron_home):
    job = tiny_job()
    state, log, record = run_to_end(LocalBackend(None, sys.executable, ()), job)
    assert state is JobState.COMPLETED, log
    assert "published nano3-pretrain-data-tiny:v1" in log
    assert "progress: 4/4 shards, 540 documents" in log  # every line of the corpus is a document

    job_dir = jobs_root() / job.name
    assert record.job_dir == str(job_dir) and record.backend == "local" and record.job_id.isdigit()
    assert (job_dir / "exit_code").read_text().strip() == "0"
    assert {"config.yaml", "job.yaml", "secrets.env", "job.log", "record.json"} <= {p.name for p in job_dir.iterdir()}
    assert find_record(job.name) == record
    assert isinstance(control_for(record), LocalBackend)
    assert control_for(record).status(record) is JobState.COMPLETED

    artifact = FileRegistry(default_registry_root()).resolve("nano3-pretrain-data-tiny")
    assert artifact.path.is_relative_to(nemotron_home)
    assert artifact.lineage.job_name == job.name  # the job identity reached the stage
    assert artifact.file("blend").is_file()
    assert not list((artifact.path.parent / ".staging").iterdir())


def missing_dataset_blend(folder: Path) -> str:
    """An override whose job fails: launch reads the blend, only the job opens its (missing) dataset."""
    blend = folder / "blend.json"
    blend.write_text('{"datasets": [{"name": "gone", "path": "/nonexistent.jsonl", "weight": 1}]}')
    return f"blend_path={blend}"


def test_failing_job_is_failed(nemotron_home):
    job = tiny_job(missing_dataset_blend(nemotron_home))
    state, log, record = run_to_end(LocalBackend(None, sys.executable, ()), job)
    assert state is JobState.FAILED
    assert state.exit_code == 1
    assert "error: " in log and "/nonexistent.jsonl" in log, log
    assert "Traceback" not in log  # a known input error is one line
    assert (Path(record.job_dir) / "exit_code").read_text().strip() == "1"
    assert FileRegistry(default_registry_root()).names() == []
    with pytest.raises(ExecutionError, match="already ended \\(FAILED\\)"):
        LocalBackend().cancel(record)


def test_failing_setup_line_fails_the_job_with_its_output_in_the_log(nemotron_home):
    job = tiny_job()
    backend = LocalBackend(None, sys.executable, ("echo setup-ran; exit 3",))  # ends the job before the stage
    record = backend.submit(job)
    assert wait_for(lambda: backend.status(record) is not JobState.RUNNING)
    assert backend.status(record) is JobState.FAILED
    assert (Path(record.job_dir) / "exit_code").read_text().strip() == "3"
    text, _ = backend.read_log(record, {})
    assert "setup-ran" in text and "published" not in text


def test_process_gone_without_exit_code_is_lost(nemotron_home):
    job = tiny_job()
    backend = LocalBackend(None, sys.executable, ("sleep 60",))
    record = backend.submit(job)
    assert wait_for(lambda: backend.status(record) is JobState.RUNNING)
    os.killpg(int(record.job_id), signal.SIGKILL)  # dies without recording anything, as after a reboot
    assert wait_for(lambda: backend.status(record) is not JobState.RUNNING)
    assert backend.status(record) is JobState.LOST


def test_cancel_running_job_kills_its_process_group(nemotron_home):
    job = tiny_job()
    backend = LocalBackend(None, sys.executable, ("sleep 60",))
    record = backend.submit(job)
    pgid = int(record.job_id)
    assert backend.status(record) is JobState.RUNNING
    assert wait_for(lambda: len(group_members(pgid)) >= 2)  # bash and its sleep
    assert os.getpgid(pgid) == pgid  # the job leads its own group, apart from pytest's

    backend.cancel(record)
    assert backend.status(record) is JobState.CANCELLED
    assert wait_for(lambda: group_members(pgid) == []), f"still alive: {group_members(pgid)}"
    assert backend.status(record) is JobState.CANCELLED
    assert not (Path(record.job_dir) / "exit_code").exists()
    assert follow(backend, record, io.StringIO(), poll_seconds=0.05) is JobState.CANCELLED
    with pytest.raises(ExecutionError, match="already ended \\(CANCELLED\\)"):
        backend.cancel(record)


def test_secret_reaches_the_job_only_through_secrets_env(nemotron_home):
    job = dataclasses.replace(tiny_job(), secret_env={"MY_TOKEN": SECRET})
    backend = LocalBackend(None, sys.executable, (f'test "$MY_TOKEN" = {SECRET} || exit 9',))
    record = backend.submit(job)
    job_dir = Path(record.job_dir)
    secrets = job_dir / "secrets.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert secrets.read_text() == f"export MY_TOKEN={SECRET}\n"

    out = io.StringIO()
    state = follow(backend, record, out, poll_seconds=0.1)
    # exit 9 in the setup would end the wrapper before it records an exit code (LOST)
    assert state is JobState.COMPLETED, out.getvalue()
    assert "published" in out.getvalue()
    for name in ("job.yaml", "config.yaml", "record.json", "job.log"):
        assert SECRET not in (job_dir / name).read_text(), name
    assert SECRET not in json.dumps(dataclasses.asdict(record))
    assert "MY_TOKEN" not in os.environ  # nothing leaked into the submitting process


def test_secret_values_are_shell_quoted(nemotron_home):
    tricky = 'it\'s $HOME `id` "q" ; echo pwned'
    job = dataclasses.replace(tiny_job(missing_dataset_blend(nemotron_home)), secret_env={"MY_TOKEN": tricky})
    expected = json.dumps(tricky).replace("$", chr(92) + "$").replace("`", chr(92) + "`")
    script = f'test "$MY_TOKEN" = {expected} || exit 9'
    backend = LocalBackend(None, sys.executable, (script,))
    state, log, _ = run_to_end(backend, job)
    assert state is JobState.FAILED, log  # the stage ran (and failed on the blend), so the value arrived intact
    assert "pwned" not in log

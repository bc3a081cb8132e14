"""A local job's pid is trusted only while it names the job's own process (start time and boot id match).

After a job's process vanished without an exit code (SIGKILL, OOM killer, reboot) the kernel may give
its pid to an unrelated process. `jobs status` must then not say RUNNING and `jobs cancel` must not
signal that process. Real processes throughout: the "new owner" is a `sleep` leading its own process
group, as the pid of an unrelated job's wrapper would.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemotron.execution.errors import ExecutionError
from nemotron.execution.launcher import LaunchRequest, prepare
from nemotron.execution.local_backend import LocalBackend
from nemotron.execution.records import JobRecord, find_record, save_record
from nemotron.execution.states import JobState
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN

pytestmark = pytest.mark.integration


def tiny_job():
    return prepare(LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", (), None, ())).job


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """An unrelated live process that leads its own process group (what a reused pid may belong to)."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def lost_job_whose_pid_was_reused(bystander: subprocess.Popen) -> tuple[LocalBackend, JobRecord]:
    """Submit a real job, kill it without an exit code (LOST), then give its record the bystander's pid,
    as if the kernel had reused the pid: everything else the record holds stays as submitted."""
    backend = LocalBackend(None, sys.executable, ("sleep 60",))
    record = backend.submit(tiny_job())
    assert wait_for(lambda: backend.status(record) is JobState.RUNNING)
    os.killpg(int(record.job_id), signal.SIGKILL)
    assert wait_for(lambda: backend.status(record) is JobState.LOST)
    reused = dataclasses.replace(record, job_id=str(bystander.pid))
    save_record(reused)
    return backend, find_record(record.name)


def test_running_job_records_its_process_identity(nemotron_home):
    backend = LocalBackend(None, sys.executable, ("sleep 60",))
    record = backend.submit(tiny_job())
    try:
        assert record.details["pid_start_time"].isdigit()
        assert record.details["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert find_record(record.name) == record  # saved with the record
        assert backend.status(record) is JobState.RUNNING
    finally:
        backend.cancel(record)
    assert backend.status(record) is JobState.CANCELLED


def test_reused_pid_is_not_running_and_cancel_leaves_its_owner_alive(nemotron_home, bystander):
    backend, record = lost_job_whose_pid_was_reused(bystander)

    assert backend.status(record) is JobState.LOST
    with pytest.raises(ExecutionError, match="nothing was killed"):
        backend.cancel(record)
    time.sleep(0.2)
    assert bystander.poll() is None, "cancel killed an unrelated process"
    assert backend.status(record) is JobState.LOST  # no `cancelled` marker was written either
    assert not (Path(record.job_dir) / "cancelled").exists()


def test_cli_cancel_of_reused_pid_says_nothing_was_killed(nemotron_home, bystander, run_cli):
    _, record = lost_job_whose_pid_was_reused(bystander)

    status = run_cli("jobs", "status", record.name, timeout=120)
    assert status.returncode == 0, status.stderr
    assert status.stdout.split() == [record.name, record.job_id, "LOST"]

    cancel = run_cli("jobs", "cancel", record.name, timeout=120)
    assert cancel.returncode != 0, cancel.stdout
    assert "nothing was killed" in cancel.stderr, cancel.stderr
    assert "cancelled" not in cancel.stdout
    time.sleep(0.2)
    assert bystander.poll() is None, "`jobs cancel` killed an unrelated process"


def test_other_boot_id_means_the_process_is_gone(nemotron_home, bystander):
    """Same pid and start time after a reboot are a coincidence, not the job."""
    backend, record = lost_job_whose_pid_was_reused(bystander)
    own_start = Path(f"/proc/{bystander.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    other_boot = dataclasses.replace(
        record, details={**record.details, "pid_start_time": own_start, "boot_id": "not-this-boot"}
    )
    assert backend.status(other_boot) is JobState.LOST
    with pytest.raises(ExecutionError, match="nothing was killed"):
        backend.cancel(other_boot)
    assert bystander.poll() is None


def test_matching_identity_is_trusted(nemotron_home, bystander):
    """The check is by identity, not by parentage: a record naming the bystander exactly is RUNNING."""
    backend, record = lost_job_whose_pid_was_reused(bystander)
    own_start = Path(f"/proc/{bystander.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    same = dataclasses.replace(record, details={**record.details, "pid_start_time": own_start})
    assert backend.status(same) is JobState.RUNNING


def test_old_record_without_identity_is_never_signalled(nemotron_home, bystander):
    """Records written before start times were kept: a live pid cannot be verified, so status is
    UNKNOWN (not RUNNING) and cancel refuses, naming how to check and stop it by hand."""
    backend, record = lost_job_whose_pid_was_reused(bystander)
    details = {k: v for k, v in record.details.items() if k not in ("pid_start_time", "boot_id")}
    old = dataclasses.replace(record, details=details)

    assert backend.status(old) is JobState.UNKNOWN
    with pytest.raises(ExecutionError, match="nothing was killed") as raised:
        backend.cancel(old)
    assert f"ps -o pid,lstart,args -p {bystander.pid}" in str(raised.value)
    time.sleep(0.2)
    assert bystander.poll() is None

    bystander.kill()
    bystander.wait()
    assert backend.status(old) is JobState.LOST  # once the pid is free, the old logic applies

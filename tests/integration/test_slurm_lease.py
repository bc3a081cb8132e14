"""Leases held by real Slurm jobs: the tasks of a job array share one, and squeue decides when it is stale."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemotron.lease import LeaseError, read_holder, take_lease

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.usefixtures("slurm_cluster")]

SRC = Path(__file__).resolve().parents[2] / "src"
HOLD = (
    "import sys, time; from pathlib import Path; from nemotron.lease import take_lease; "
    "lease = take_lease(Path(sys.argv[1]), what='data prep output folder'); "
    "Path(sys.argv[2], sys.argv[3]).write_text('held'); time.sleep(300)"
)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_job_arrays_lease_refuses_others_while_it_runs_and_frees_the_folder_when_it_ends(tmp_path, monkeypatch):
    folder, marks = tmp_path / "data", tmp_path / "marks"
    marks.mkdir()
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    command = f'{sys.executable} -c "$HOLD" {folder} {marks} task-$SLURM_ARRAY_TASK_ID'
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-1",
            "--cpus-per-task=1",
            f"--output={tmp_path}/%A_%a.out",
            "--wrap",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOLD": HOLD, "PYTHONPATH": str(SRC)},
    )
    assert submitted.returncode == 0, submitted.stderr
    array = submitted.stdout.strip().split(";")[0]
    try:
        # both tasks run at once (2 CPUs): one takes the lease, the other joins it
        _wait_for(lambda: all((marks / f"task-{i}").exists() for i in (0, 1)), 120, "both tasks to hold the lease")
        holder = read_holder(folder)
        assert holder is not None and holder.group == array
        with pytest.raises(LeaseError, match=f"Slurm job array {array}") as refused:
            take_lease(folder, what="data prep output folder")  # this process is no task of the array
        assert f"scancel {array}" in str(refused.value)
    finally:
        subprocess.run(["scancel", array], capture_output=True, timeout=60)
    # once squeue no longer lists the array, its lease is stale: taken over at once (not after the heartbeat)
    _wait_for(
        lambda: array not in subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True).stdout,
        120,
        "the array to leave the queue",
    )
    take_lease(folder, what="data prep output folder").release()
    logs = "".join(p.read_text() for p in tmp_path.glob("*.out"))
    assert "Error" not in logs, logs  # every task that ran took (or joined) the lease without error

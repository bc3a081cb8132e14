"""A lease on a folder keeps a second process out while the first holds it, and lets it in once the holder is gone.

Every holder here is a real second process (`python -c` taking the lease and sleeping), never a mock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemotron.errors import NemotronError
from nemotron.lease import LEASE_FILE, LeaseError, read_holder, take_lease

SRC = Path(__file__).resolve().parents[1] / "src"
HOLD = (
    "import sys, time; from pathlib import Path; from nemotron.lease import take_lease; "
    "lease = take_lease(Path(sys.argv[1]), what='the test folder'); print('held', flush=True); "
    "time.sleep(float(sys.argv[2])); lease.release()"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID")}
    env["PYTHONPATH"] = str(SRC)
    env.update(extra)
    return env


def _holder(folder: Path, seconds: float = 60.0, **env: str) -> subprocess.Popen[str]:
    """A second process that takes the lease on `folder` and holds it for `seconds`."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "held", line + process.stderr.read() if process.stderr else ""
    return process


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)


def test_a_second_taker_is_refused_with_the_holder_named(tmp_path):
    holder = _holder(tmp_path, SLURM_JOB_ID="4242")
    try:
        started = time.monotonic()
        with pytest.raises(LeaseError) as refused:
            take_lease(tmp_path, what="the test folder")
        assert time.monotonic() - started < 5  # refused at once, not after a wait
        message = str(refused.value)
        assert str(tmp_path) in message
        assert socket.gethostname() in message
        assert f"pid {holder.pid}" in message
        assert "4242" in message and "scancel 4242" in message
        assert LEASE_FILE in message  # the fix names the file to delete when the holder is surely dead
        assert isinstance(refused.value, NemotronError)
        assert holder.poll() is None  # the holder is untouched
        assert read_holder(tmp_path).pid == holder.pid
    finally:
        _end(holder)


def test_the_callers_error_class_is_raised(tmp_path):
    class MyError(NemotronError):
        pass

    holder = _holder(tmp_path)
    try:
        with pytest.raises(MyError):
            take_lease(tmp_path, what="the test folder", error=MyError)
    finally:
        _end(holder)


def test_release_on_exit_frees_the_folder(tmp_path):
    holder = _holder(tmp_path, seconds=0.1)
    holder.wait(timeout=30)
    assert not (tmp_path / LEASE_FILE).exists()
    take_lease(tmp_path, what="the test folder").release()


def test_a_lease_whose_holder_died_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no chance to release: the file stays behind
    holder.wait(timeout=30)
    assert (tmp_path / LEASE_FILE).exists()
    lease = take_lease(tmp_path, what="the test folder")
    try:
        assert read_holder(tmp_path).pid == os.getpid()
    finally:
        lease.release()
    assert not (tmp_path / LEASE_FILE).exists()


def test_a_reused_pid_does_not_keep_a_lease(tmp_path):
    # The recorded pid is alive (this very process) but started at another time: a later process got the pid.
    lease = take_lease(tmp_path, what="the test folder")
    record = json.loads((tmp_path / LEASE_FILE).read_text())
    lease.release()
    record["start_time"] = str(int(record["start_time"]) + 1)
    (tmp_path / LEASE_FILE).write_text(json.dumps(record))
    take_lease(tmp_path, what="the test folder").release()


def test_the_same_slurm_job_takes_over_its_own_lease(tmp_path, monkeypatch):
    holder = _holder(tmp_path, SLURM_JOB_ID="777")  # the job's earlier process, before a requeue
    try:
        monkeypatch.setenv("SLURM_JOB_ID", "778")
        with pytest.raises(LeaseError):
            take_lease(tmp_path, what="the test folder")
        monkeypatch.setenv("SLURM_JOB_ID", "777")
        lease = take_lease(tmp_path, what="the test folder")
        assert read_holder(tmp_path).pid == os.getpid()
        lease.release()
    finally:
        _end(holder)


def _foreign(tmp_path: Path, age_s: float) -> None:
    record = {
        "host": "some-other-node",
        "pid": 12345,
        "start_time": "1",
        "boot_id": "other-boot",
        "slurm_job_id": None,
        "since": "2024-01-01T00:00:00+00:00",
        "token": "x",
    }
    path = tmp_path / LEASE_FILE
    path.write_text(json.dumps(record))
    renewed = time.time() - age_s
    os.utime(path, (renewed, renewed))


def test_a_lease_of_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path):
    _foreign(tmp_path, age_s=5)
    with pytest.raises(LeaseError, match="some-other-node"):
        take_lease(tmp_path, what="the test folder", stale_after_s=60)
    _foreign(tmp_path, age_s=120)
    take_lease(tmp_path, what="the test folder", stale_after_s=60).release()


def test_the_holder_renews_its_heartbeat(tmp_path):
    lease = take_lease(tmp_path, what="the test folder", heartbeat_s=0.1)
    try:
        path = tmp_path / LEASE_FILE
        old = time.time() - 1000
        os.utime(path, (old, old))
        deadline = time.monotonic() + 10
        while path.stat().st_mtime < old + 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_mtime > old + 500
    finally:
        lease.release()


def test_racing_takers_get_one_lease(tmp_path):
    # Eight processes try at once on a stale lease; exactly one holds it afterwards.
    _foreign(tmp_path, age_s=1000)
    script = (
        "import sys, time; from pathlib import Path; from nemotron.lease import take_lease, LeaseError\n"
        "try:\n    lease = take_lease(Path(sys.argv[1]), what='x', stale_after_s=60)\n"
        "except LeaseError:\n    print('refused', flush=True); sys.exit(0)\n"
        "print('held', flush=True); time.sleep(15); lease.release()\n"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=_env(), stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outputs = [racer.communicate(timeout=60)[0].strip() for racer in racers]
    assert sorted(outputs) == ["held"] + ["refused"] * 7, outputs


@pytest.fixture
def no_squeue(tmp_path, monkeypatch):
    """A machine where squeue cannot be asked (as on a laptop): holders are judged by their heartbeat."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_the_tasks_of_one_job_array_share_the_lease_and_leave_it_for_the_finalize(tmp_path, monkeypatch, no_squeue):
    folder = tmp_path / "data"
    holder = _holder(folder, SLURM_JOB_ID="901", SLURM_ARRAY_JOB_ID="900")  # task 0 of array 900
    try:
        monkeypatch.setenv("SLURM_JOB_ID", "902")  # task 1 of the same array joins
        monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "900")
        joined = take_lease(folder, what="the test folder")
        assert read_holder(folder).pid == holder.pid  # joining does not replace the record
        joined.release()
        assert (folder / LEASE_FILE).exists()  # a task never deletes it: others of the array may still run
        monkeypatch.setenv("SLURM_JOB_ID", "903")  # anyone else (another array, the finalize job) waits
        monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
        with pytest.raises(LeaseError, match="Slurm job array 900") as refused:
            take_lease(folder, what="the test folder")
        assert "scancel 900" in str(refused.value)
    finally:
        _end(holder)
    assert (folder / LEASE_FILE).exists()  # the array's lease outlives its tasks ...
    old = time.time() - 1000
    os.utime(folder / LEASE_FILE, (old, old))  # ... until its heartbeat is old (or squeue says it ended)
    take_lease(folder, what="the test folder", stale_after_s=60).release()
    assert not (folder / LEASE_FILE).exists()


def test_a_taker_can_wait_for_the_holder_to_finish(tmp_path):
    holder = _holder(tmp_path, seconds=1.0)
    try:
        with pytest.raises(LeaseError):
            take_lease(tmp_path, what="the test folder", wait_s=0.2)
        started = time.monotonic()
        lease = take_lease(tmp_path, what="the test folder", wait_s=60)
        assert time.monotonic() - started < 30
        assert read_holder(tmp_path).pid == os.getpid()
        lease.release()
        assert holder.wait(timeout=30) == 0
    finally:
        _end(holder)

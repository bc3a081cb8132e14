"""Two processes of the same training run: the second is refused at once and leaves the first run's checkpoints alone.

The first run is a real second process holding the run folder's lease; the second is the toy stage
(tests/training/run/toy_stage.py), which runs the shared session like every training stage.
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

STAGE = Path(__file__).with_name("toy_stage.py")
SRC = Path(__file__).resolve().parents[3] / "src"
HOLD = (
    "import sys, time; from pathlib import Path; from nemotron.lease import take_lease; "
    "lease = take_lease(Path(sys.argv[1]), what='training run'); print('held', flush=True); time.sleep(600)"
)
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*TORCHRUN_VARS, "SLURM_JOB_ID")}
    env["PYTHONPATH"] = str(SRC)
    env.update(extra)
    return env


def _toy(root: Path, train_iters: int, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(STAGE), str(root), str(train_iters), str(out)],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _holder(folder: Path, **env: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], env=_env(**env), stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def first_run(tmp_path):
    """A run `toy` with a checkpoint at step 2 and a save of step 4 in progress (`*.partial`)."""
    root = tmp_path / "artifacts"
    done = _toy(root, 2, tmp_path / "first.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = root.resolve().parent / "runs" / "toy"
    partial = folder / "checkpoints" / "iter_0000004.partial"
    partial.mkdir()
    (partial / "shard").write_text("a save in progress")
    return root, folder


@pytest.mark.integration
def test_a_second_process_of_a_running_run_is_refused_and_touches_nothing(first_run, tmp_path):
    root, folder = first_run
    holder = _holder(folder, SLURM_JOB_ID="5150")
    try:
        before = _snapshot(folder)
        started = time.monotonic()
        done = _toy(root, 4, tmp_path / "second.json")
        elapsed = time.monotonic() - started
        assert done.returncode != 0, done.stdout[-3000:]
        assert "LeaseError" in done.stderr or "RunFolderBusy" in done.stderr, done.stderr[-3000:]
        assert str(folder) in done.stderr
        assert f"pid {holder.pid}" in done.stderr and socket.gethostname() in done.stderr
        assert "5150" in done.stderr
        assert "resumed" not in done.stdout  # refused before resuming
        assert _snapshot(folder) == before  # the partial save and every checkpoint untouched
        assert (folder / "checkpoints" / "iter_0000004.partial" / "shard").exists()
        assert holder.poll() is None
        assert elapsed < 120
    finally:
        _end(holder)


@pytest.mark.integration
def test_a_run_whose_holder_died_is_taken_over_and_resumes(first_run, tmp_path):
    root, folder = first_run
    holder = _holder(folder)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (folder / ".lease.json").exists()
    done = _toy(root, 4, tmp_path / "second.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "second.json").read_text())
    assert sorted(int(step) for step in result["losses"]) == [3, 4]  # resumed from step 2
    assert not (folder / ".lease.json").exists()  # released at the end


@pytest.mark.integration
def test_a_requeued_slurm_job_takes_over_its_own_run(first_run, tmp_path):
    root, folder = first_run
    holder = _holder(folder, SLURM_JOB_ID="31337")  # the job's process before the requeue
    try:
        other = _toy(root, 4, tmp_path / "other.json", SLURM_JOB_ID="31338")
        assert other.returncode != 0 and "31337" in other.stderr, other.stderr[-3000:]
        done = _toy(root, 4, tmp_path / "second.json", SLURM_JOB_ID="31337")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert json.loads((tmp_path / "second.json").read_text())["iteration"] == 4
    finally:
        _end(holder)


@pytest.mark.integration
def test_every_rank_of_a_torchrun_stops_when_the_run_is_held(first_run, tmp_path):
    """Rank 0 takes the lease and tells the others: both ranks end with the refusal, none hangs or resumes."""
    root, folder = first_run
    holder = _holder(folder)
    try:
        before = _snapshot(folder)
        done = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(STAGE)]
            + [str(root), "4", str(tmp_path / "second.json")],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode != 0, done.stdout[-3000:]
        refusals = done.stderr.count(f"training run 'toy' {folder} is in use by another process")
        assert refusals == 2, done.stderr[-5000:]  # rank 0's refusal, and the same on rank 1
        assert "resumed" not in done.stdout
        assert _snapshot(folder) == before
    finally:
        _end(holder)

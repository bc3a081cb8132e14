"""`nemotron nano3 pretrain` on the local Slurm cluster with 2 torchrun ranks: the time-limit warning
(SIGUSR1, as `scancel --signal=USR1` sends it) saves, requeues and resumes the real training stage,
which then finishes and publishes; the run then resumes again with a different data-parallel size."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

PREP = ("nano3", "data", "prep", "pretrain", "-c", "tiny")
TIMEOUT = 180


@pytest.fixture(scope="module")
def small(small_pretrain) -> tuple[str, ...]:
    """The shared small model (conftest's small_pretrain) with this module's settings."""
    return (
        *small_pretrain,
        "lr.warmup_iters=5",
        "guard.warmup_steps=5",
        "sample.tokens=4",
        "train.log_interval=1",
        "train.eval_interval=null",
        "run_name=slurm-run",
    )


def logs_text(job_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((job_dir / "logs").glob("log-*.out")))


def wait_until(predicate, what: str, timeout: float = 2 * TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.usefixtures("slurm_cluster")
def test_pretrain_requeues_on_the_time_limit_warning_and_resumes(run_cli, add_env_profile, nemotron_home, small):
    add_env_profile("pretrain-slurm", ntasks_per_node=2)
    assert run_cli(*PREP, timeout=300).returncode == 0

    submitted = run_cli("nano3", "pretrain", "-c", "tiny", *small, "train.train_iters=150", "--batch", "pretrain-slurm")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    name, job_id = re.search(r"submitted (\S+) as Slurm job (\d+)", " ".join(submitted.stdout.split())).groups()
    job_dir = nemotron_home / "jobs" / name
    try:
        wait_until(lambda: "progress: 5/150" in logs_text(job_dir), "step 5")
        subprocess.run(["scancel", "--signal=USR1", job_id], check=True, timeout=60)
        done = run_cli("jobs", "status", name, "--wait", timeout=600)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
    logs = sorted((job_dir / "logs").glob("log-*.out"))
    first, second = (p.read_text() for p in logs[-2:])
    assert done.stdout.strip().split("\t")[-1] == "COMPLETED", done.stdout + first + second
    assert len(logs) == 2, [p.name for p in logs]
    assert "processes: world_size 2" in first and "data 2" in first
    stopped = int(re.search(r"stop requested \(.*SIGUSR1.*\) after step (\d+)", first).group(1))
    assert "requeueing the job to resume" in first
    assert f"(step {stopped}," in second and "resumed from" in second
    assert f"progress: {stopped + 1}/150" in second and "progress: 150/150" in second
    assert "published slurm-run:v1 (step 150)" in second

    # Resume the finished run for 20 more steps in ONE local process: data-parallel size 2 -> 1.
    more = run_cli("nano3", "pretrain", "-c", "tiny", *small, "train.train_iters=170", timeout=600)
    assert more.returncode == 0, more.stdout + more.stderr
    assert "data 1" in more.stdout and "(step 150," in more.stdout
    assert "progress: 151/170" in more.stdout and "published slurm-run:v2 (step 170)" in more.stdout

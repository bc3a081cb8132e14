"""`nemotron nano3 pretrain` on the local Slurm cluster with 2 torchrun ranks: the time-limit warning
(SIGUSR1, as `scancel --signal=USR1` sends it) saves, requeues and resumes the real training stage,
which then finishes and publishes; the run then resumes again with a different data-parallel size."""

from __future__ import annotations

import pytest
from slurm_requeue import warn_once_and_wait

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

PREP = ("nano3", "data", "prep", "pretrain", "-c", "tiny")


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


@pytest.mark.usefixtures("slurm_cluster")
def test_pretrain_requeues_on_the_time_limit_warning_and_resumes(run_cli, add_env_profile, nemotron_home, small):
    add_env_profile("pretrain-slurm", ntasks_per_node=2)
    assert run_cli(*PREP, timeout=300).returncode == 0

    submitted = run_cli("nano3", "pretrain", "-c", "tiny", *small, "train.train_iters=150", "--batch", "pretrain-slurm")
    job = warn_once_and_wait(run_cli, submitted, nemotron_home, "progress: 5/150")
    first, second, stopped = job.first, job.second, job.stopped
    assert job.status == "COMPLETED", job.status + first + second
    assert job.log_count == 2 and stopped is not None, first + second
    assert "processes: world_size 2" in first and "data 2" in first
    assert "requeueing the job to resume" in first
    assert f"(step {stopped}," in second and "resumed from" in second
    assert f"progress: {stopped + 1}/150" in second and "progress: 150/150" in second
    assert "published slurm-run:v1 (step 150)" in second

    # Resume the finished run for 20 more steps in ONE local process: data-parallel size 2 -> 1.
    more = run_cli("nano3", "pretrain", "-c", "tiny", *small, "train.train_iters=170", timeout=600)
    assert more.returncode == 0, more.stdout + more.stderr
    assert "data 1" in more.stdout and "(step 150," in more.stdout
    assert "progress: 151/170" in more.stdout and "published slurm-run:v2 (step 170)" in more.stdout

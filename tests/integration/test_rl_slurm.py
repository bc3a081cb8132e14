"""`nemotron nano3 rl` on the local Slurm cluster with 2 torchrun ranks (each sampling its share of the groups):
the time-limit warning (SIGUSR1) saves, requeues the job, which resumes on the same prompt order, finishes
and publishes a model artifact with lineage to the rl-data and the starting model."""

from __future__ import annotations

import json
import re

import pytest
from slurm_requeue import warn_once_and_wait

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

REWARD = re.compile(r"^progress: (\d+)/\d+ steps, .*?reward_mean (\S+)", re.MULTILINE)


@pytest.mark.usefixtures("slurm_cluster")
def test_rl_requeues_on_the_time_limit_warning_resumes_and_publishes(
    run_cli, add_env_profile, nemotron_home, rl_inputs
):
    add_env_profile("rl-slurm", ntasks_per_node=2)
    submitted = run_cli(
        *("nano3", "rl", "-c", "tiny", "run.model=base:latest", "run_name=rl-slurm"),
        *("grpo.prompts_per_step=4", "grpo.group_size=4", "train.global_batch_size=16", "train.micro_batch_size=4"),
        *("train.train_iters=40", "train.log_interval=1", "train.eval_interval=null", "lr.warmup_iters=1"),
        *("generation.max_new_tokens=16", "held_out.count=4"),
        "--batch",
        "rl-slurm",
    )
    job = warn_once_and_wait(run_cli, submitted, nemotron_home, "progress: 3/40")
    first, second, stopped = job.first, job.second, job.stopped
    assert job.status == "COMPLETED", job.status + first + second
    assert job.log_count == 2 and stopped is not None, first + second
    assert "processes: world_size 2" in first and "data 2" in first and "starting from the weights of" in first
    assert "requeueing the job to resume" in first
    assert f"(step {stopped}," in second and "resumed from" in second
    assert f"progress: {stopped + 1}/40" in second and "progress: 40/40" in second
    assert "published rl-slurm:v1 (step 40)" in second
    assert "held-out answers (greedy, test split, 4 prompts)" in second
    assert {int(step) for step, _ in REWARD.findall(first + second)} == set(range(1, 41))

    artifact = json.loads((nemotron_home / "artifacts" / "rl-slurm" / "v1" / "artifact.json").read_text())
    assert {"nano3-rl-data-tiny:v1", "base:v1"} <= set(artifact["lineage"]["inputs"])
    assert "accuracy" in artifact["metadata"]["evaluation"]

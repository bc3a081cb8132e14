"""`nemotron nano3 sft` with LoRA on the local Slurm cluster with 2 torchrun ranks: the time-limit warning
(SIGUSR1) saves the adapters, requeues the job, which resumes (base weights, then adapters), finishes
and publishes a model artifact with lineage to the sft-data and the base model."""

from __future__ import annotations

import json

import pytest
from slurm_requeue import warn_once_and_wait

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


@pytest.mark.usefixtures("slurm_cluster")
def test_lora_sft_requeues_on_the_time_limit_warning_resumes_and_publishes(
    run_cli, add_env_profile, nemotron_home, sft_inputs
):
    add_env_profile("sft-slurm", ntasks_per_node=2)
    submitted = run_cli(
        *("nano3", "sft", "-c", "tiny", "run.model=base:latest", "run_name=sft-slurm"),
        *("peft.kind=lora", "peft.rank=4", "train.train_iters=120", "train.log_interval=1"),
        *("train.eval_interval=null", "lr.warmup_iters=2", "guard.warmup_steps=2", "answers.count=2"),
        "--batch",
        "sft-slurm",
    )
    job = warn_once_and_wait(run_cli, submitted, nemotron_home, "progress: 5/120")
    first, second, stopped = job.first, job.second, job.stopped
    assert job.status == "COMPLETED", job.status + first + second
    assert job.log_count == 2 and stopped is not None, first + second
    assert "processes: world_size 2" in first and "starting from the weights of" in first
    assert "requeueing the job to resume" in first
    assert f"(step {stopped}," in second and "resumed from" in second
    assert f"progress: {stopped + 1}/120" in second and "progress: 120/120" in second
    assert "published sft-slurm:v1 (step 120)" in second
    assert "held-out answers" in second

    artifact = json.loads((nemotron_home / "artifacts" / "sft-slurm" / "v1" / "artifact.json").read_text())
    assert {"nano3-sft-data-tiny:v1", "base:v1"} <= set(artifact["lineage"]["inputs"])
    assert artifact["metadata"]["peft"]["base"] == "base:v1"
    assert "exact_match" in artifact["metadata"]["evaluation"]

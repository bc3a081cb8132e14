"""`nemotron nano3 sft` with LoRA on the local Slurm cluster with 2 torchrun ranks: the time-limit warning
(SIGUSR1) saves the adapters, requeues the job, which resumes (base weights, then adapters), finishes
and publishes a model artifact with lineage to the sft-data and the base model."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

TIMEOUT = 180


def logs_text(job_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((job_dir / "logs").glob("log-*.out")))


def wait_until(predicate, what: str, timeout: float = 2 * TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


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
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    name, job_id = re.search(r"submitted (\S+) as Slurm job (\d+)", " ".join(submitted.stdout.split())).groups()
    job_dir = nemotron_home / "jobs" / name
    try:
        wait_until(lambda: "progress: 5/120" in logs_text(job_dir), "step 5")
        subprocess.run(["scancel", "--signal=USR1", job_id], check=True, timeout=60)
        done = run_cli("jobs", "status", name, "--wait", timeout=600)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
    logs = sorted((job_dir / "logs").glob("log-*.out"))
    first, second = (p.read_text() for p in logs[-2:])
    assert done.stdout.strip().split("\t")[-1] == "COMPLETED", done.stdout + first + second
    assert len(logs) == 2, [p.name for p in logs]
    assert "processes: world_size 2" in first and "starting from the weights of" in first
    stopped = int(re.search(r"stop requested \(.*SIGUSR1.*\) after step (\d+)", first).group(1))
    assert "requeueing the job to resume" in first
    assert f"(step {stopped}," in second and "resumed from" in second
    assert f"progress: {stopped + 1}/120" in second and "progress: 120/120" in second
    assert "published sft-slurm:v1 (step 120)" in second
    assert "held-out answers" in second

    artifact = json.loads((nemotron_home / "artifacts" / "sft-slurm" / "v1" / "artifact.json").read_text())
    assert {"nano3-sft-data-tiny:v1", "base:v1"} <= set(artifact["lineage"]["inputs"])
    assert artifact["metadata"]["peft"]["base"] == "base:v1"
    assert "exact_match" in artifact["metadata"]["evaluation"]

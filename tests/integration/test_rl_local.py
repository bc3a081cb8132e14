"""`nemotron nano3 rl` end to end on this machine: GRPO from a model artifact on the tiny arithmetic prompts.

A small pretrained model (conftest's rl_inputs: 64-token sequences, barely trained, so rewards are
mostly 0; the tiny recipe's real improvement is shown by the quick start) runs a few GRPO steps:
rollouts are sampled, scored and logged, held-out answers measured, checkpoints saved, the model
artifact published with lineage; a run resumed in the middle takes the same prompts and samples the
same completions as an uninterrupted one.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_inherited_secrets")]

STEP = re.compile(r"^progress: (\d+)/\d+ steps, loss (\S+) .*?reward_mean (\S+)", re.MULTILINE)
HELD_OUT = re.compile(r"^validation at step (\d+): held_out_accuracy (\S+)", re.MULTILINE)


def rl(run_cli, *overrides: str):
    return run_cli(
        "nano3",
        "rl",
        "-c",
        "tiny",
        "run.model=base:latest",
        "grpo.prompts_per_step=4",
        "grpo.group_size=4",
        "train.global_batch_size=16",
        "train.micro_batch_size=8",
        "train.log_interval=1",
        "train.eval_interval=4",
        "generation.max_new_tokens=16",
        "generation.max_batch_size=16",
        "held_out.count=8",
        "checkpoint.save_interval=4",
        "lr.warmup_iters=1",
        *overrides,
        timeout=600,
    )


def rewards(text: str) -> dict[int, str]:
    return {int(step): reward for step, _, reward in STEP.findall(text)}


def test_grpo_samples_scores_checkpoints_publishes_and_resumes_on_the_same_prompts(run_cli, rl_inputs, nemotron_home):
    straight = rl(run_cli, "train.train_iters=6", "run_name=straight", "train.eval_interval=6")
    out = straight.stdout + straight.stderr
    assert straight.returncode == 0, out[-4000:]
    assert "starting from the weights of" in straight.stdout and "base/v1/checkpoint" in straight.stdout
    logged = rewards(straight.stdout)
    assert sorted(logged) == [1, 2, 3, 4, 5, 6], straight.stdout[-3000:]
    for name in ("zero_std_groups", "completion_tokens", "generation_tokens_per_second", "clip_high", "entropy"):
        assert name in straight.stdout, name
    assert sorted(int(step) for step, _ in HELD_OUT.findall(straight.stdout)) == [0, 6]
    assert re.search(r"held-out answers \(greedy, test split, 8 prompts\): mean reward \d+% \(\d+% before RL\)", out)
    assert "published straight:v1 (step 6)" in straight.stdout

    artifact = json.loads((nemotron_home / "artifacts" / "straight" / "v1" / "artifact.json").read_text())
    assert artifact["kind"] == "model-checkpoint" and artifact["lineage"]["stage"] == "rl"
    assert {"nano3-rl-data-tiny:v1", "base:v1"} <= set(artifact["lineage"]["inputs"])
    assert artifact["metadata"]["evaluation"]["answers"] == 8

    first = rl(run_cli, "train.train_iters=4", "run_name=resumed")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = rl(run_cli, "train.train_iters=6", "run_name=resumed")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resumed from" in second.stdout and "(step 4" in second.stdout
    resumed = rewards(second.stdout)
    assert sorted(resumed) == [5, 6]
    # the same prompts, completions and rewards as the uninterrupted run (rewards printed to 4 digits)
    assert [resumed[5], resumed[6]] == [logged[5], logged[6]]
    assert [rewards(first.stdout)[s] for s in (1, 2, 3, 4)] == [logged[s] for s in (1, 2, 3, 4)]


def test_the_kl_reference_is_the_starting_model(run_cli, rl_inputs):
    """With a KL coefficient the frozen reference is built from the start checkpoint: before the first update
    the policy is that model, so the first step's KL is 0 (a wrongly loaded reference would show here)."""
    done = rl(run_cli, "train.train_iters=2", "run_name=kl", "grpo.kl_coef=0.1", "held_out.count=0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    kl = {int(step): float(value) for step, value in re.findall(r"^progress: (\d+)/.*? kl (\S+) ", done.stdout, re.M)}
    assert sorted(kl) == [1, 2], done.stdout[-2000:]
    assert abs(kl[1]) < 1e-6, kl


def test_a_bad_rl_setting_is_refused_at_launch(run_cli, rl_inputs):
    done = rl(run_cli, "generation.max_new_tokens=40", "--dry-run")
    assert done.returncode == 2
    assert "prompts of up to" in done.stderr and "generation.max_new_tokens" in done.stderr
    done = rl(run_cli, "train.global_batch_size=12", "--dry-run")
    assert done.returncode == 2 and "grpo.prompts_per_step * grpo.group_size" in done.stderr


def test_gpu_dry_run_shows_the_torchrun_command_and_sbatch_script(run_cli, rl_inputs, nemotron_home):
    """default.yaml against a 2-node x 8-GPU Slurm profile, with this machine's artifacts as its inputs (and
    generation.max_new_tokens fitted to their 64-token model): previewed here, nothing submitted."""
    (nemotron_home.parent / "env.toml").write_text(
        '[gpu-cluster]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\nnodes = 2\n'
        'gpus_per_node = 8\ntime = "04:00:00"\njob_dir = "/lustre/me/jobs"\n'
    )
    inputs = ("run.data=nano3-rl-data-tiny:latest", "run.model=base:latest", "generation.max_new_tokens=16")
    done = run_cli("nano3", "rl", "--dry-run", "--batch", "gpu-cluster", *inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    for expected in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --signal=USR1@120",
        "-m torch.distributed.run --nnodes=$SLURM_NNODES --nproc-per-node=8",
        "-m nemotron.stages.rl --config",
        "run.model: base:latest -> base:v1 (model-checkpoint)",
        "run.data: nano3-rl-data-tiny:latest -> nano3-rl-data-tiny:v1 (rl-data)",
        "prompts_per_step: 128",
        "clip_high: 0.28",
    ):
        assert expected in out, expected
    assert "nothing was written or submitted" in out
    pipeline = run_cli("nano3", "rl", "--dry-run", "--batch", "gpu-cluster", *inputs, "parallel.pipeline=2")
    assert pipeline.returncode != 0 and "parallel.pipeline" in pipeline.stderr

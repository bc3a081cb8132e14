"""`nemotron nano3 pretrain` end to end on this machine: learning, resume after a stop, bad checkpoints, HF export."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_inherited_secrets")]

PREP = ("nano3", "data", "prep", "pretrain", "-c", "tiny")
PRETRAIN = ("nano3", "pretrain", "-c", "tiny")
STEP = re.compile(r"^progress: (\d+)/\d+ steps, loss ([0-9.]+)", re.MULTILINE)
VALIDATION = re.compile(r"^validation at step (\d+): loss ([0-9.]+)", re.MULTILINE)


@pytest.fixture(scope="module")
def small(small_pretrain) -> tuple[str, ...]:
    """The shared small model (conftest's small_pretrain) with this module's settings."""
    return (*small_pretrain, "lr.warmup_iters=5", "guard.warmup_steps=5", "sample.tokens=8")


@pytest.fixture
def tiny_data(run_cli):
    done = run_cli(*PREP, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def step_losses(text: str) -> dict[int, float]:
    return {int(step): float(loss) for step, loss in STEP.findall(text)}


def test_tiny_pretraining_learns_publishes_a_model_and_exports_to_hf(
    run_cli, tiny_data, nemotron_home, tmp_path, small
):
    done = run_cli(
        *PRETRAIN,
        *small,
        "train.train_iters=60",
        "train.eval_interval=30",
        "checkpoint.save_interval=30",
        "run_name=learn",
        "artifact_name=tiny-model",
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    validation = {int(step): float(loss) for step, loss in VALIDATION.findall(done.stdout)}
    assert sorted(validation) == [0, 30, 60]
    assert validation[60] < validation[0] - 1.5, validation  # from ~ln(8192) = 9.0 to well below
    assert "published tiny-model:v1 (step 60)" in done.stdout
    assert re.search(r"sample \(greedy, 8 tokens\): 'The Python", done.stdout)

    artifact = json.loads((nemotron_home / "artifacts" / "tiny-model" / "v1" / "artifact.json").read_text())
    assert artifact["kind"] == "model-checkpoint" and artifact["metadata"]["step"] == 60
    assert "nano3-pretrain-data-tiny:v1" in artifact["lineage"]["inputs"]  # lineage to the data artifact
    checkpoints = nemotron_home / "runs" / "learn" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("iter_*")) == ["iter_0000030", "iter_0000060"]
    assert list((nemotron_home / "runs" / "learn" / "tensorboard").glob("events.out.tfevents.*"))

    # Re-running the finished run resumes at its end: nothing is trained or published again.
    again = run_cli(*PRETRAIN, *small, "train.train_iters=60", "run_name=learn", "artifact_name=tiny-model")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed from" in again.stdout and "(step 60" in again.stdout
    assert not STEP.findall(again.stdout) and "nothing new to publish: tiny-model:v1" in again.stdout

    out_dir = tmp_path / "hf"
    export = run_cli("nano3", "model", "export", "hf", "tiny-model:latest", str(out_dir), "--dtype", "float32")
    assert export.returncode == 0, export.stdout + export.stderr
    assert_hf_logits_match_checkpoint(out_dir, nemotron_home / "artifacts" / "tiny-model" / "v1" / "checkpoint")


def assert_hf_logits_match_checkpoint(hf_dir: Path, checkpoint: Path) -> None:
    """transformers' model from the export and megatron's model from the checkpoint agree on a batch."""
    from transformers import AutoModelForCausalLM

    from nemotron.training.checkpoint.layout import read_checkpoint_info
    from nemotron.training.checkpoint.store import load_checkpoint
    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.export.from_checkpoint import unsplit_model_config
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig

    info = read_checkpoint_info(checkpoint)
    config = unsplit_model_config(info)
    tokens = torch.randint(0, config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    context = init_distributed(ParallelConfig())
    try:
        model = build_model(config, ParallelConfig(), context.device)
        model.load_state_dict(load_checkpoint(info, {"model": model.sharded_state_dict()})["model"])
        model.eval()
        with torch.no_grad():
            expected = model(tokens, torch.arange(32).expand(2, -1), None)[..., : config.vocab_size]
    finally:
        destroy_distributed()
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        actual = hf(tokens).logits
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() < 1e-4


def wait_for_step(log: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and any(s >= step for s in step_losses(log.read_text())):
            return
        time.sleep(0.2)
    raise AssertionError(f"step {step} never appeared in {log}:\n{log.read_text() if log.exists() else ''}")


def test_a_stopped_run_resumes_on_the_same_loss_curve(run_cli, tiny_data, nemotron_home, small):
    (nemotron_home.parent / "env.toml").write_text('[dev-box]\nexecutor = "local"\n')
    run = (*PRETRAIN, *small, "train.train_iters=120", "train.log_interval=1", "train.eval_interval=null")
    straight = run_cli(*run, "run_name=straight", timeout=600)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    expected = step_losses(straight.stdout)

    batch = run_cli(*run, "run_name=stopped", "--batch", "dev-box")
    assert batch.returncode == 0, batch.stdout + batch.stderr
    name = re.search(r"submitted (\S+) as local process", batch.stdout).group(1)
    log = nemotron_home / "jobs" / name / "job.log"
    wait_for_step(log, 5)
    cancel = run_cli("jobs", "cancel", name)  # SIGTERM, as on preemption
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    deadline = time.monotonic() + 60
    while "re-run the same command to resume" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    first = log.read_text()
    assert "SIGTERM" in first and "saved checkpoint" in first, first
    stopped_at = max(step_losses(first))
    assert 5 <= stopped_at < 120

    resumed = run_cli(*run, "run_name=stopped", timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"(step {stopped_at}," in resumed.stdout
    after = step_losses(resumed.stdout)
    assert min(after) == stopped_at + 1 and max(after) == 120
    for step, loss in after.items():
        assert loss == pytest.approx(expected[step], abs=2e-4), step


def test_damaged_or_missing_checkpoints_are_reported_with_the_path(run_cli, tiny_data, nemotron_home, small):
    base = (*PRETRAIN, *small, "train.train_iters=12", "train.eval_interval=null", "run_name=damaged")
    assert run_cli(*base).returncode == 0
    newest = nemotron_home / "runs" / "damaged" / "checkpoints" / "iter_0000012"
    next(newest.glob("__*.distcp")).unlink()
    done = run_cli(*base[:-2], "train.train_iters=14", "train.eval_interval=null", "run_name=damaged")
    assert done.returncode != 0
    assert str(newest) in done.stderr + done.stdout and "error:" in done.stderr + done.stdout

    missing = run_cli(*base, "checkpoint.load=/nowhere/iter_0000001")
    assert missing.returncode != 0 and "/nowhere/iter_0000001" in missing.stdout + missing.stderr


def test_impossible_model_configs_fail_before_anything_runs(run_cli, tiny_data, nemotron_home):
    jobs_before = sorted((nemotron_home / "jobs").iterdir())
    done = run_cli(*PRETRAIN, "model.num_attention_heads=3")
    assert done.returncode != 0
    assert "model.num_attention_heads" in done.stderr and "does not divide" in done.stderr
    assert sorted((nemotron_home / "jobs").iterdir()) == jobs_before  # no job was started


def test_gpu_dry_run_shows_the_torchrun_command_and_sbatch_script(run_cli, tiny_data, nemotron_home):
    """default.yaml (~1B) against a 2-node x 8-GPU Slurm profile: previewed here, nothing submitted."""
    (nemotron_home.parent / "env.toml").write_text(
        '[gpu-cluster]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\nnodes = 2\n'
        'gpus_per_node = 8\ntime = "04:00:00"\njob_dir = "/lustre/me/jobs"\n'
    )
    done = run_cli(
        "nano3", "pretrain", "--dry-run", "--batch", "gpu-cluster", "run.data=nano3-pretrain-data-tiny:latest"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    for expected in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --signal=USR1@120",
        "--ntasks-per-node=1",
        "-m torch.distributed.run --nnodes=$SLURM_NNODES --nproc-per-node=8",
        "--rdzv-backend=c10d",
        "-m nemotron.stages.pretrain --config",
        "num_layers: 16",
        "hidden_size: 2048",
        "vocab_size: 8192",
    ):
        assert expected in out, expected
    assert "nothing was written or submitted" in out
    # 16 GPUs with tensor 3 cannot work: refused before anything is shown or submitted
    bad = run_cli(
        "nano3",
        "pretrain",
        "--dry-run",
        "--batch",
        "gpu-cluster",
        "run.data=nano3-pretrain-data-tiny:latest",
        "parallel.tensor=3",
    )
    assert bad.returncode != 0 and "does not divide the world size 16" in bad.stderr

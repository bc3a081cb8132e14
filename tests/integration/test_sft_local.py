"""`nemotron nano3 sft` end to end on this machine: from a pretrained model artifact on packed chat data, full and LoRA.

A small pretrained model (conftest's small_pretrain, 64-token sequences) is fine-tuned on the tiny
chat corpus packed into rows of 64 tokens: the run starts from the base weights, learns, resumes,
publishes a model artifact with lineage to both inputs, answers held-out prompts; LoRA starts exactly
at the base model, checkpoints only its adapters, exports merged and starts another fine-tune merged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_inherited_secrets")]

STEP = re.compile(r"^progress: (\d+)/\d+ steps, loss ([0-9.]+)", re.MULTILINE)
VALIDATION = re.compile(r"^validation at step (\d+): loss ([0-9.]+)", re.MULTILINE)
SFT = ("nano3", "sft", "-c", "tiny")


def sft(run_cli, *overrides: str):
    return run_cli(
        *SFT,
        "run.model=base:latest",
        "train.eval_interval=10",
        "train.eval_iters=1",
        "checkpoint.save_interval=10",
        "lr.warmup_iters=2",
        "guard.warmup_steps=2",
        "answers.count=4",
        *overrides,
        timeout=600,
    )


def validation(text: str) -> dict[int, float]:
    return {int(step): float(loss) for step, loss in VALIDATION.findall(text)}


def test_sft_starts_from_the_base_learns_resumes_and_publishes_with_lineage(run_cli, sft_inputs, nemotron_home):
    done = sft(run_cli, "train.train_iters=20", "run_name=full")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "starting from the weights of" in done.stdout and "base/v1/checkpoint" in done.stdout
    curve = validation(done.stdout)
    assert sorted(curve) == [0, 10, 20] and curve[20] < curve[0], curve
    assert "published full:v1 (step 20)" in done.stdout
    assert re.search(r"held-out answers \(greedy, test split\): exact match \d+% \(\d+% before", done.stdout)

    artifact = json.loads((nemotron_home / "artifacts" / "full" / "v1" / "artifact.json").read_text())
    assert artifact["kind"] == "model-checkpoint"
    assert {"nano3-sft-data-tiny:v1", "base:v1"} <= set(artifact["lineage"]["inputs"])
    assert artifact["lineage"]["stage"] == "sft"
    evaluation = artifact["metadata"]["evaluation"]
    assert evaluation["answers"] == 4 and 0 <= evaluation["exact_match_at_start"] <= 1

    longer = sft(run_cli, "train.train_iters=30", "run_name=full")
    assert longer.returncode == 0, longer.stdout[-3000:] + longer.stderr[-3000:]
    assert "resumed from" in longer.stdout and "(step 20" in longer.stdout
    assert "starting from the weights of" not in longer.stdout  # a resume never reloads the base
    assert sorted(int(step) for step, _ in STEP.findall(longer.stdout))[0] > 20
    assert "published full:v2 (step 30)" in longer.stdout


def test_lora_starts_at_the_base_checkpoints_adapters_and_exports_merged(run_cli, sft_inputs, nemotron_home, tmp_path):
    full = sft(run_cli, "train.train_iters=3", "run_name=full-ref", "answers.count=0")
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    done = sft(run_cli, "train.train_iters=10", "run_name=lora", "peft.kind=lora", "peft.rank=4", "lr.lr=5e-3")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert re.search(r"LoRA: 8 adapters of rank 4, [\d,]+ of [\d,]+ parameters train", done.stdout)
    # B = 0: before the first update the adapted model is the base model, on the same validation batches
    assert validation(done.stdout)[0] == validation(full.stdout)[0]
    assert validation(done.stdout)[10] < validation(done.stdout)[0]

    checkpoint = nemotron_home / "runs" / "lora" / "checkpoints" / "iter_0000010"
    info = json.loads((checkpoint / "nemotron_checkpoint.json").read_text())
    assert info["peft"]["kind"] == "lora" and info["peft"]["base"] == "base:v1"
    saved = _saved_model_keys(checkpoint)
    assert saved and all(key.endswith(("lora_a", "lora_b")) for key in saved)  # adapters only

    out_dir = tmp_path / "hf"
    export = run_cli("nano3", "model", "export", "hf", "lora:latest", str(out_dir), "--dtype", "float32")
    assert export.returncode == 0, export.stdout + export.stderr
    _assert_export_is_base_plus_adapters(out_dir, checkpoint)

    # a fine-tune from the LoRA model starts at the adapted model: its adapters merged onto their base
    chained = sft(run_cli, "train.train_iters=3", "run_name=from-lora", "run.model=lora:latest", "answers.count=0")
    assert chained.returncode == 0, chained.stdout[-3000:] + chained.stderr[-3000:]
    assert "starting from the weights of" in chained.stdout and "/lora/v1/checkpoint" in chained.stdout
    assert validation(chained.stdout)[0] == pytest.approx(validation(done.stdout)[10], abs=2e-4)


def _saved_model_keys(checkpoint: Path) -> list[str]:
    from torch.distributed.checkpoint import FileSystemReader

    metadata = FileSystemReader(str(checkpoint)).read_metadata()
    return [key for key in metadata.state_dict_metadata if not key.startswith(("optimizer.", "rng"))]


def _assert_export_is_base_plus_adapters(hf_dir: Path, checkpoint: Path) -> None:
    """The merged export computes what the base model with its (unmerged) adapters computes."""
    from transformers import AutoModelForCausalLM

    from nemotron.training.checkpoint.layout import read_checkpoint_info
    from nemotron.training.checkpoint.store import load_checkpoint
    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.export.from_checkpoint import unsplit_model_config
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig
    from nemotron.training.model.lora import LoraSettings, attach_lora, checkpoint_part, load_part

    info = read_checkpoint_info(checkpoint)
    peft = info.metadata["peft"]
    base = read_checkpoint_info(Path(peft["base_checkpoint"]))
    config = unsplit_model_config(info)
    tokens = torch.randint(0, config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    context = init_distributed(ParallelConfig())
    try:
        model = build_model(config, ParallelConfig(), context.device)
        model.load_state_dict(load_checkpoint(base, {"model": model.sharded_state_dict()})["model"])
        model.eval()
        with torch.no_grad():
            base_logits = model(tokens, torch.arange(32).expand(2, -1), None)[..., : config.vocab_size]
        attach_lora(model, LoraSettings(peft["rank"], peft["alpha"], peft["dropout"], tuple(peft["target_modules"])))
        load_part(model, load_checkpoint(info, {"model": checkpoint_part(model.sharded_state_dict())})["model"])
        with torch.no_grad():
            expected = model(tokens, torch.arange(32).expand(2, -1), None)[..., : config.vocab_size]
    finally:
        destroy_distributed()
    assert (expected - base_logits).abs().max().item() > 1e-3  # the adapters learned something
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        actual = hf(tokens).logits
    assert (actual - expected).abs().max().item() < 1e-4


def test_gpu_dry_run_shows_the_torchrun_command_and_sbatch_script(run_cli, sft_inputs, nemotron_home):
    """default.yaml against a 2-node x 8-GPU Slurm profile, with this machine's artifacts as its inputs:
    previewed here, nothing submitted; what the job would refuse is refused here."""
    (nemotron_home.parent / "env.toml").write_text(
        '[gpu-cluster]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\nnodes = 2\n'
        'gpus_per_node = 8\ntime = "04:00:00"\njob_dir = "/lustre/me/jobs"\n'
    )
    inputs = ("run.data=nano3-sft-data-tiny:latest", "run.model=base:latest")
    done = run_cli("nano3", "sft", "--dry-run", "--batch", "gpu-cluster", *inputs)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    for expected in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --signal=USR1@120",
        "-m torch.distributed.run --nnodes=$SLURM_NNODES --nproc-per-node=8",
        "-m nemotron.stages.sft --config",
        "run.model: base:latest -> base:v1 (model-checkpoint)",
        "run.data: nano3-sft-data-tiny:latest -> nano3-sft-data-tiny:v1 (sft-data)",
        "seq_length: 64",  # the model's settings come from the starting checkpoint
        "epochs: 2",
    ):
        assert expected in out, expected
    assert "nothing was written or submitted" in out

    split = run_cli("nano3", "sft", "--dry-run", "--batch", "gpu-cluster", *inputs, "parallel.context=2")
    assert split.returncode != 0 and "parallel.context=1" in split.stderr
    wrong_kind = run_cli("nano3", "sft", "--dry-run", "-c", "tiny", "run.model=nano3-sft-data-tiny:latest")
    assert wrong_kind.returncode != 0 and "run.model" in wrong_kind.stderr and "model-checkpoint" in wrong_kind.stderr

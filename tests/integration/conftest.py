"""Fixtures of the end-to-end tests: a small pretrained model artifact and the tiny chat data packed for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# slurm_requeue.py holds the Slurm requeue tests' shared steps; they import it by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SFT_PACK_SIZE = 64  # the small pretrained model's sequence length (conftest's small_pretrain)


@pytest.fixture
def no_inherited_secrets(monkeypatch) -> None:
    """No W&B or Hugging Face credentials, and no W&B project, from the environment the tests run in."""
    for name in ("WANDB_API_KEY", "HF_TOKEN", "NEMOTRON_WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def base_model_commands(small_pretrain: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The CLI calls that publish `base:v1`: 20 steps of the small 64-token model on the tiny corpus."""
    return (
        ("nano3", "data", "prep", "pretrain", "-c", "tiny"),
        (
            "nano3",
            "pretrain",
            "-c",
            "tiny",
            *small_pretrain,
            "train.train_iters=20",
            "lr.warmup_iters=2",
            "guard.warmup_steps=2",
            "train.eval_interval=20",
            "sample.tokens=0",
            "run_name=base",
        ),
    )


@pytest.fixture
def sft_inputs(run_cli, small_pretrain) -> None:
    """Artifacts `base:v1` (20 steps of the small model on the tiny corpus) and `nano3-sft-data-tiny:v1`
    (the tiny chat corpus packed into rows of the model's 64 tokens), in this test's NEMOTRON_HOME."""
    for args in (
        *base_model_commands(small_pretrain),
        ("nano3", "data", "prep", "sft", "-c", "tiny", f"pack_size={SFT_PACK_SIZE}", "overflow=drop", "num_shards=2"),
    ):
        done = run_cli(*args, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture
def rl_inputs(run_cli, small_pretrain) -> None:
    """Artifacts `base:v1` (20 steps of the small 64-token model) and `nano3-rl-data-tiny:v1` (the tiny
    arithmetic prompts, at most 44 tokens so that 16 new tokens fit), in this test's NEMOTRON_HOME."""
    for args in (
        *base_model_commands(small_pretrain),
        ("nano3", "data", "prep", "rl", "-c", "tiny", "max_prompt_tokens=44", "num_shards=2"),
    ):
        done = run_cli(*args, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def small_pipe_head(small_pretrain) -> str:
    """The first stages of a pipe config for the pipe tests: tiny pretraining data prep, then 6 steps of the
    small model (conftest's small_pretrain) on it, as `prep_pretrain` and `pretrain`."""
    overrides = ", ".join(
        (
            *small_pretrain,
            "train.train_iters=6",
            "lr.warmup_iters=2",
            "guard.warmup_steps=2",
            "train.eval_interval=6",
            "sample.tokens=0",
            "checkpoint.save_interval=6",
        )
    )
    return (
        "stages:\n"
        "  prep_pretrain: {stage: data-prep-pretrain, config: tiny}\n"
        f"  pretrain: {{stage: pretrain, config: tiny, overrides: [{overrides}]}}\n"
    )

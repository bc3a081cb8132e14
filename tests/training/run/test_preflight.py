"""Launch-time checks of a training config against the processes a profile starts (no torch, nothing submitted)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from nemotron.config.errors import ConfigError
from nemotron.env.settings import Profile, SlurmSettings
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.optim.lr_schedules import LRScheduleConfig
from nemotron.training.pretrain.config import PretrainConfig, PretrainRefs
from nemotron.training.run.config import TrainSection
from nemotron.training.run.preflight import check_training_run, planned_processes

CONFIG = PretrainConfig(
    run=PretrainRefs(data="data:v1"),
    run_name="r",
    model=ModelConfig(num_layers=4, hidden_size=256, num_attention_heads=4, vocab_size=8192, seq_length=128),
    train=TrainSection(global_batch_size=16, micro_batch_size=8, train_iters=10),
    lr=LRScheduleConfig(lr=1e-3, warmup_iters=2),
)
GPU_CLUSTER = Profile(name="gpu", executor="slurm", slurm=SlurmSettings(account="a", nodes=2, gpus_per_node=8))
LOCAL = Profile.default_local()


def with_(config=CONFIG, **sections) -> PretrainConfig:
    return dataclasses.replace(config, **sections)


def test_processes_of_a_gpu_cluster_and_of_this_machine():
    assert planned_processes(GPU_CLUSTER) == (16, "cuda")
    cpu_cluster = Profile(name="cpu", executor="slurm", slurm=SlurmSettings(account="a", nodes=3, ntasks_per_node=2))
    assert planned_processes(cpu_cluster) == (6, "cpu")
    assert planned_processes(LOCAL)[0] == 1


def test_a_valid_config_passes_on_both():
    local = check_training_run(CONFIG, LOCAL)
    assert (local.budget.train_iters, local.micro_batches) == (10, 2)  # 16 sequences = 2 x 8 on one rank
    cluster = check_training_run(
        with_(parallel=ParallelConfig(tensor=2), train=TrainSection(128, 8, train_iters=10)), GPU_CLUSTER
    )
    assert (cluster.budget.train_iters, cluster.micro_batches) == (10, 2)  # 16 ranks / tensor 2 = 8 replicas x 8 x 2


@pytest.mark.parametrize(
    "config, profile, message",
    [
        (
            with_(model=dataclasses.replace(CONFIG.model, num_attention_heads=3)),
            LOCAL,
            r"'model.num_attention_heads' \(3\) does not divide model.hidden_size \(256\)",
        ),
        (with_(parallel=ParallelConfig(tensor=3)), GPU_CLUSTER, r"does not divide the world size 16"),
        (with_(parallel=ParallelConfig(tensor=2)), LOCAL, r"'parallel.tensor' is 2 but the CPU supports only 1"),
        (
            with_(train=TrainSection(global_batch_size=24, micro_batch_size=2, train_iters=10)),
            GPU_CLUSTER,
            r"global_batch_size=24 is not divisible by micro_batch_size \(2\) x data-parallel size \(16\)",
        ),
        (with_(lr=LRScheduleConfig(lr=1e-3, warmup_iters=50)), LOCAL, r"warmup"),
    ],
)
def test_configs_that_cannot_run_fail_with_the_key(config, profile, message):
    with pytest.raises(ConfigError, match=message):
        check_training_run(config, profile)


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "../x", "a" * 101])
def test_run_name_must_be_a_folder_name(name):
    # a ValueError (InvalidNameError), which the schema reports at the key 'run_name' (test_run_names.py)
    with pytest.raises(ValueError, match="^key 'run_name' is "):
        with_(run_name=name)


@pytest.mark.parametrize("section, key", [("save_interval", 0), ("keep_last", 0)])
def test_checkpoint_intervals_must_be_positive(section, key):
    from nemotron.training.run.config import CheckpointSection

    with pytest.raises(ConfigError, match=f"checkpoint.{section}"):
        CheckpointSection(**{section: key})


def test_the_launch_path_imports_no_torch():
    """The launcher validates the schema and runs preflight before any job: both load without torch (a fast dry run)."""
    code = (
        "import sys, nemotron.training.pretrain.config, nemotron.training.run.preflight; "
        "print(sorted(m for m in ('torch', 'megatron', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

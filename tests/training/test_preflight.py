"""Launch-time checks of a training config against the processes a profile starts (no torch, nothing submitted)."""

from __future__ import annotations

import dataclasses

import pytest

from nemotron.config.errors import ConfigError
from nemotron.env.settings import Profile, SlurmSettings
from nemotron.training.lr_schedules import LRScheduleConfig
from nemotron.training.model_config import ModelConfig, ParallelConfig
from nemotron.training.preflight import check_training_run, planned_processes
from nemotron.training.run_config import RunRefs, TrainingRunConfig, TrainSection

CONFIG = TrainingRunConfig(
    run=RunRefs(data="data:v1"),
    run_name="r",
    model=ModelConfig(num_layers=4, hidden_size=256, num_attention_heads=4, vocab_size=8192, seq_length=128),
    train=TrainSection(global_batch_size=16, micro_batch_size=8, train_iters=10),
    lr=LRScheduleConfig(lr=1e-3, warmup_iters=2),
)
GPU_CLUSTER = Profile(name="gpu", executor="slurm", slurm=SlurmSettings(account="a", nodes=2, gpus_per_node=8))
LOCAL = Profile.default_local()


def with_(config=CONFIG, **sections) -> TrainingRunConfig:
    return dataclasses.replace(config, **sections)


def test_processes_of_a_gpu_cluster_and_of_this_machine():
    assert planned_processes(GPU_CLUSTER) == (16, "cuda")
    cpu_cluster = Profile(name="cpu", executor="slurm", slurm=SlurmSettings(account="a", nodes=3, ntasks_per_node=2))
    assert planned_processes(cpu_cluster) == (6, "cpu")
    assert planned_processes(LOCAL)[0] == 1


def test_a_valid_config_passes_on_both():
    check_training_run(CONFIG, LOCAL)
    check_training_run(with_(parallel=ParallelConfig(tensor=2), train=TrainSection(128, 8, train_iters=10)), GPU_CLUSTER)


@pytest.mark.parametrize(
    "config, profile, message",
    [
        (with_(model=dataclasses.replace(CONFIG.model, num_attention_heads=3)), LOCAL,
         r"'model.num_attention_heads' \(3\) does not divide model.hidden_size \(256\)"),
        (with_(parallel=ParallelConfig(tensor=3)), GPU_CLUSTER, r"does not divide the world size 16"),
        (with_(parallel=ParallelConfig(tensor=2)), LOCAL, r"'parallel.tensor' is 2 but the CPU supports only 1"),
        (with_(train=TrainSection(global_batch_size=24, micro_batch_size=2, train_iters=10)), GPU_CLUSTER,
         r"global_batch_size=24 is not divisible by micro_batch_size \(2\) x data-parallel size \(16\)"),
        (with_(lr=LRScheduleConfig(lr=1e-3, warmup_iters=50)), LOCAL, r"warmup"),
    ],
)
def test_configs_that_cannot_run_fail_with_the_key(config, profile, message):
    with pytest.raises(ConfigError, match=message):
        check_training_run(config, profile)


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_run_name_must_be_a_folder_name(name):
    with pytest.raises(ConfigError, match="run_name"):
        with_(run_name=name)


@pytest.mark.parametrize("section, key", [("save_interval", 0), ("keep_last", 0)])
def test_checkpoint_intervals_must_be_positive(section, key):
    from nemotron.training.run_config import CheckpointSection

    with pytest.raises(ConfigError, match=f"checkpoint.{section}"):
        CheckpointSection(**{section: key})

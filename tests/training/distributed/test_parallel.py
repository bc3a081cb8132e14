"""Process-group setup: torchrun variables, the one-process default, and a real 2-process gloo data-parallel run."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from megatron.core import parallel_state

from nemotron.training.distributed.parallel import (
    TORCHRUN_VARS,
    DistributedError,
    LaunchEnv,
    destroy_distributed,
    init_distributed,
    launch_env,
)
from nemotron.training.model.config import ModelConfig, ModelConfigError, ParallelConfig

TORCHRUN_ENV = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
WORKER_MODEL = ModelConfig(
    num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=128,
    vocab_size=1000, seq_length=16, make_vocab_size_divisible_by=64,
)  # fmt: skip


def test_no_torchrun_variables_means_a_single_process():
    assert launch_env({"HOME": "/root"}) is None


def test_torchrun_variables_are_parsed():
    assert launch_env(TORCHRUN_ENV) == LaunchEnv(
        rank=1, world_size=4, local_rank=1, master_addr="10.0.0.1", master_port=29500
    )


def test_partial_torchrun_variables_name_the_missing_ones():
    with pytest.raises(DistributedError, match="LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not"):
        launch_env({"RANK": "0", "WORLD_SIZE": "2"})


@pytest.mark.parametrize(("name", "value"), [("RANK", "one"), ("RANK", "4"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "-1")])
def test_inconsistent_torchrun_variables_are_rejected(name, value):
    with pytest.raises(DistributedError, match="relaunch with torchrun"):
        launch_env({**TORCHRUN_ENV, name: value})


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    destroy_distributed()


@pytest.mark.integration
def test_single_process_default_builds_megatron_groups(no_torchrun):
    context = init_distributed(ParallelConfig(), seed=5)
    assert (context.rank, context.world_size, context.local_rank, context.data) == (0, 1, 0, 1)
    assert context.is_main
    if not torch.cuda.is_available():
        assert context.device == torch.device("cpu") and context.backend == "gloo"
    assert dist.is_initialized() and dist.get_world_size() == 1
    assert parallel_state.get_data_parallel_world_size() == 1
    assert parallel_state.get_tensor_model_parallel_world_size() == 1

    with pytest.raises(DistributedError, match="destroy_distributed"):
        init_distributed(ParallelConfig())
    destroy_distributed()
    assert not dist.is_initialized()
    assert not parallel_state.model_parallel_is_initialized()
    destroy_distributed()  # a second call is harmless


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusals")
def test_cpu_refusals_happen_before_joining_a_group(no_torchrun):
    with pytest.raises(DistributedError, match="nccl"):
        init_distributed(ParallelConfig(), backend="nccl")
    with pytest.raises(ModelConfigError, match="config key 'parallel.tensor'"):
        init_distributed(ParallelConfig(tensor=2))
    assert not dist.is_initialized()


@pytest.mark.integration
def test_two_process_gloo_data_parallel(tmp_path):
    from two_ranks import run_two_ranks  # tests/training (conftest): not on the workers' path

    run_two_ranks(__file__, tmp_path)

    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [r["rank"] for r in reports] == [0, 1]
    for report in reports:
        assert report["world_size"] == 2
        assert report["data_parallel"] == 2 and report["megatron_data_parallel"] == 2
        assert report["megatron_tensor_parallel"] == 1
    assert reports[0]["initial_params"] == reports[1]["initial_params"], "same seed must give identical weights"
    assert reports[0]["loss"] != reports[1]["loss"], "each rank trains on its own data"
    assert reports[0]["local_grads"] != reports[1]["local_grads"]
    assert reports[0]["averaged_grads"] == reports[1]["averaged_grads"], "all-reduced gradients must agree"


def _digest(tensors) -> str:
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(tensor.detach().contiguous().numpy().tobytes())
    return sha.hexdigest()


def _worker(out_dir: Path) -> None:
    """One torchrun rank: join, build the model, take a backward step on rank-specific data, all-reduce grads."""
    from nemotron.training.model.build import build_model

    context = init_distributed(ParallelConfig(), seed=42)
    model = build_model(WORKER_MODEL, ParallelConfig(), context.device)
    initial = _digest(p for p in model.parameters())

    generator = torch.Generator().manual_seed(1000 + context.rank)
    tokens = torch.randint(0, WORKER_MODEL.vocab_size, (2, 9), generator=generator)
    positions = torch.arange(8).unsqueeze(0).expand(2, -1)
    loss = model(tokens[:, :-1].contiguous(), positions, None, labels=tokens[:, 1:].contiguous()).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    local = _digest(grads)
    group = parallel_state.get_data_parallel_group()
    for grad in grads:
        dist.all_reduce(grad, group=group)
        grad /= context.data
    report = {
        "rank": context.rank,
        "world_size": context.world_size,
        "data_parallel": context.data,
        "megatron_data_parallel": parallel_state.get_data_parallel_world_size(),
        "megatron_tensor_parallel": parallel_state.get_tensor_model_parallel_world_size(),
        "initial_params": initial,
        "loss": loss.item(),
        "local_grads": local,
        "averaged_grads": _digest(grads),
    }
    (out_dir / f"rank{context.rank}.json").write_text(json.dumps(report))
    destroy_distributed()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))

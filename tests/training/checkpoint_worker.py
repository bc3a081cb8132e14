"""Checkpoint test helpers, and a script run as one rank of a save/load job (torchrun-style environment variables).

Run as `python checkpoint_worker.py {save,load,crash} ROOT OUT [--tie]`. Heavy imports stay inside functions:
megatron's checkpoint saver spawns a helper process that re-imports this file as its main module.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SEQ = 16
MICRO_BATCH = 2
DATA_POSITION = {"consumed_samples": 64, "epoch": 0, "order": [3, 1, 2]}


def tiny_model_config(tie: bool):
    """The 2-layer, hidden-64 GPT used by the checkpoint tests (swiglu fc1 is a sharded-tensor factory)."""
    from nemotron.training.model.config import ModelConfig

    return ModelConfig(
        num_layers=2, hidden_size=64, num_attention_heads=4, num_query_groups=2, ffn_hidden_size=128,
        swiglu=True, normalization="RMSNorm", position_embedding="rope", vocab_size=8100,
        make_vocab_size_divisible_by=128, seq_length=32, tie_embeddings=tie,
    )  # fmt: skip


def build_state(seed: int, tie: bool, **model_changes):
    """(model, AdamW with decay/no-decay groups, LR scheduler), weights drawn from `seed`."""
    import dataclasses

    from nemotron.training.distributed.parallel import seed_rngs
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig
    from nemotron.training.optim.lr_schedules import LRScheduleConfig, LRScheduler
    from nemotron.training.optim.optimizer import OptimizerConfig, build_optimizer

    seed_rngs(seed)
    config = dataclasses.replace(tiny_model_config(tie), **model_changes)
    model = build_model(config, ParallelConfig(), "cpu")
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-3))
    scheduler = LRScheduler(optimizer, LRScheduleConfig(lr=1e-3, warmup_iters=3), train_iters=20)
    return model, optimizer, scheduler


def train(model, optimizer, scheduler, steps: int, *, rank: int = 0, dp_size: int = 1) -> None:
    """Real optimizer steps on rank-specific random tokens, gradients averaged over data-parallel ranks."""
    import torch
    import torch.distributed as dist
    from megatron.core import parallel_state

    for step in range(steps):
        generator = torch.Generator().manual_seed(1000 * step + rank)
        tokens = torch.randint(0, 8100, (MICRO_BATCH, SEQ + 1), generator=generator)
        positions = torch.arange(SEQ).unsqueeze(0).expand(MICRO_BATCH, -1)
        optimizer.zero_grad()
        model(tokens[:, :-1].contiguous(), positions, None, labels=tokens[:, 1:].contiguous()).mean().backward()
        if dp_size > 1:
            for param in model.parameters():
                dist.all_reduce(param.grad, group=parallel_state.get_data_parallel_group())
                param.grad /= dp_size
        optimizer.step()
        scheduler.step()


def sharded_state(model, optimizer, scheduler, data_position: dict) -> dict:
    """Everything a training run checkpoints: weights, optimizer, scheduler, data position, RNG."""
    from nemotron.training.checkpoint.optimizer_state import optimizer_sharded_state_dict
    from nemotron.training.checkpoint.rng import rng_sharded_state

    model_state = model.sharded_state_dict()
    return {
        "model": model_state,
        "optimizer": optimizer_sharded_state_dict(optimizer, model_state, model),
        "scheduler": scheduler.state_dict(),
        "data": data_position,
        "rng": rng_sharded_state(),
    }


def restore(model, optimizer, scheduler, loaded: dict) -> dict:
    """Apply a loaded sharded_state(); returns the data position."""
    from nemotron.training.checkpoint.optimizer_state import load_optimizer_state
    from nemotron.training.checkpoint.rng import restore_rng

    model.load_state_dict(loaded["model"])
    load_optimizer_state(optimizer, loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    restore_rng(loaded["rng"])
    return loaded["data"]


def snapshot(model, optimizer, scheduler) -> dict:
    """Weights, optimizer moments/steps by parameter name, group settings and scheduler step, as plain copies."""
    import torch

    names = {id(param): name for name, param in model.named_parameters()}
    weights = {k: v.detach().clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    moments = {
        f"{names[id(param)]}/{key}": value.detach().clone() if isinstance(value, torch.Tensor) else value
        for param, state in optimizer.state.items()
        for key, value in state.items()
    }
    groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    return {"weights": weights, "moments": moments, "groups": groups, "scheduler": scheduler.state_dict()}


def assert_same(expected: dict, actual: dict) -> None:
    """Snapshots equal exactly (tensors bit for bit)."""
    import torch

    for part in ("weights", "moments"):
        assert expected[part].keys() == actual[part].keys(), part
        for key, value in expected[part].items():
            other = actual[part][key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other), f"{part} {key} differs"
            else:
                assert value == other, f"{part} {key} differs"
    assert expected["groups"] == actual["groups"]
    assert expected["scheduler"] == actual["scheduler"]


CHILDREN_FILE = "children.txt"


class _ExitWhenPickled:
    """Kills the process the moment the saver serialises it: a crash in the middle of a save.

    It first lists the process's children (megatron's spawned helper outlives an abrupt exit) in
    OUT/children.txt, so the test can end them.
    """

    def __init__(self, out: Path) -> None:
        self.out = out

    def __reduce__(self):
        import os

        import psutil

        pids = [child.pid for child in psutil.Process().children(recursive=True)]
        (self.out / CHILDREN_FILE).write_text("\n".join(map(str, pids)))
        os._exit(3)


def _save(root: Path, out: Path, tie: bool) -> None:
    import torch
    import torch.distributed as dist

    from nemotron.training.checkpoint.store import save_checkpoint

    model, optimizer, scheduler = build_state(seed=1, tie=tie)
    rank, size = dist.get_rank(), dist.get_world_size()
    train(model, optimizer, scheduler, 2, rank=rank, dp_size=size)
    state = sharded_state(model, optimizer, scheduler, DATA_POSITION)
    save_checkpoint(root, 2, state, {"data_parallel": size}, keep_last=None)
    expected = {**snapshot(model, optimizer, scheduler), "next_rand": torch.rand(4)}
    torch.save(expected, out / f"rank{rank}.pt")


def _load(root: Path, out: Path, tie: bool) -> None:
    import torch
    import torch.distributed as dist

    from nemotron.training.checkpoint.layout import latest_checkpoint
    from nemotron.training.checkpoint.store import load_checkpoint

    model, optimizer, scheduler = build_state(seed=99, tie=tie)
    info = latest_checkpoint(root)
    loaded = load_checkpoint(info, sharded_state(model, optimizer, scheduler, {}))
    data = restore(model, optimizer, scheduler, loaded)
    actual = {**snapshot(model, optimizer, scheduler), "next_rand": torch.rand(4), "data": data, "info": info}
    torch.save(actual, out / f"rank{dist.get_rank()}.pt")


def _crash(root: Path, out: Path, tie: bool) -> None:
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    from nemotron.training.checkpoint.store import save_checkpoint

    model, optimizer, scheduler = build_state(seed=1, tie=tie)
    save_checkpoint(root, 1, sharded_state(model, optimizer, scheduler, DATA_POSITION), {}, keep_last=None)
    (out / "saved_first").write_text("ok")
    state = sharded_state(model, optimizer, scheduler, DATA_POSITION)
    state["bomb"] = ShardedObject("bomb", _ExitWhenPickled(out), (1,), (0,), replica_id=0)
    save_checkpoint(root, 2, state, {}, keep_last=1)
    (out / "survived").write_text("the save should have killed the process")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("save", "load", "crash"))
    parser.add_argument("root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tie", action="store_true")
    args = parser.parse_args(argv)

    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.model.config import ParallelConfig

    init_distributed(ParallelConfig(), seed=1)
    try:
        {"save": _save, "load": _load, "crash": _crash}[args.mode](args.root, args.out, args.tie)
    finally:
        destroy_distributed()


if __name__ == "__main__":
    main(sys.argv[1:])

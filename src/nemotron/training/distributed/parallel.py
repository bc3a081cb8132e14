"""Process groups for training: torch.distributed from torchrun's environment, megatron's parallel groups, seeds."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

from nemotron.training.cpu_compat import enable_cpu_compat
from nemotron.training.errors import TrainingError
from nemotron.training.model.config import ParallelConfig, data_parallel_size, validate_parallel

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
BACKENDS = ("gloo", "nccl")


class DistributedError(TrainingError):
    """The process cannot join (or leave) the training process group; the message says why and the fix."""


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a torchrun launch."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job: ranks, device, backend and the parallel sizes in force."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    tensor: int
    pipeline: int
    context: int
    data: int
    expert: int
    seed: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes shared files."""
        return self.rank == 0


def launch_env(environ: Mapping[str, str]) -> LaunchEnv | None:
    """The torchrun variables in `environ`, or None when none is set (a plain single process)."""
    present = [name for name in TORCHRUN_VARS if name in environ]
    if not present:
        return None
    missing = [name for name in TORCHRUN_VARS if name not in environ]
    if missing:
        raise DistributedError(
            f"environment variables {', '.join(present)} are set but {', '.join(missing)} are not; launch with "
            "torchrun (which sets all of them) or unset them to run as a single process"
        )
    try:
        values = {name: int(environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    except ValueError:
        shown = ", ".join(f"{name}={environ[name]!r}" for name in TORCHRUN_VARS)
        raise DistributedError(f"torchrun variables must be integers ({shown}); relaunch with torchrun") from None
    if not 0 <= values["RANK"] < values["WORLD_SIZE"] or values["LOCAL_RANK"] < 0:
        raise DistributedError(
            f"RANK={values['RANK']} is outside WORLD_SIZE={values['WORLD_SIZE']} (LOCAL_RANK={values['LOCAL_RANK']}); "
            "relaunch with torchrun"
        )
    return LaunchEnv(
        rank=values["RANK"],
        world_size=values["WORLD_SIZE"],
        local_rank=values["LOCAL_RANK"],
        master_addr=environ["MASTER_ADDR"],
        master_port=values["MASTER_PORT"],
    )


def init_distributed(
    parallel: ParallelConfig,
    *,
    seed: int = 1234,
    backend: str | None = None,
    timeout_s: float = 600.0,
) -> DistributedContext:
    """Join the process group (torchrun's, else a one-process group), build megatron's groups and seed the RNGs.

    The backend defaults to nccl with CUDA and gloo without; on the CPU this also enables the CPU shim.
    """
    if dist.is_initialized():
        raise DistributedError("torch.distributed is already initialized; call destroy_distributed() first")
    env = launch_env(os.environ)
    rank, world_size, local_rank = (env.rank, env.world_size, env.local_rank) if env else (0, 1, 0)
    on_gpu = torch.cuda.is_available()
    backend = backend or ("nccl" if on_gpu else "gloo")
    if backend not in BACKENDS:
        raise DistributedError(f"backend {backend!r} is not supported; use one of {', '.join(BACKENDS)}")
    if backend == "nccl" and not on_gpu:
        raise DistributedError("backend 'nccl' needs CUDA, which is not available; use gloo (the default on CPU)")
    device = torch.device("cuda", local_rank) if on_gpu else torch.device("cpu")
    validate_parallel(parallel, world_size, device.type)

    if on_gpu:
        torch.cuda.set_device(device)
    else:
        enable_cpu_compat()
    timeout = timedelta(seconds=timeout_s)
    if env is None:
        # One process needs no rendezvous: an in-memory store avoids picking (and racing for) a port.
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    else:
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, timeout=timeout)
    try:
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=parallel.tensor,
            pipeline_model_parallel_size=parallel.pipeline,
            context_parallel_size=parallel.context,
            expert_model_parallel_size=parallel.expert,
        )
        seed_rngs(seed)
    except BaseException:
        destroy_distributed()
        raise
    return DistributedContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        device=device,
        backend=backend,
        tensor=parallel.tensor,
        pipeline=parallel.pipeline,
        context=parallel.context,
        data=data_parallel_size(parallel, world_size),
        expert=parallel.expert,
        seed=seed,
    )


def seed_rngs(seed: int) -> None:
    """Seed Python, NumPy, torch and megatron's tracked model-parallel states, as Megatron-LM does.

    Each pipeline stage gets its own base seed (seed + 100 * stage) so stages do not initialise alike;
    data-parallel replicas share it, so they start from identical weights.
    """
    if not parallel_state.model_parallel_is_initialized():
        raise DistributedError("seed_rngs needs megatron's parallel groups; call init_distributed() first")
    stage_seed = seed + 100 * parallel_state.get_pipeline_model_parallel_rank()
    random.seed(stage_seed)
    np.random.seed(stage_seed)
    torch.manual_seed(stage_seed)
    model_parallel_cuda_manual_seed(stage_seed)


def destroy_distributed() -> None:
    """Tear down megatron's groups and the process group; safe to call when nothing is initialized."""
    parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()

"""RNG state in checkpoints: Python, NumPy, torch and megatron's tracker, one copy per model-parallel rank."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch
from megatron.core import parallel_state
from megatron.core.dist_checkpointing.mapping import ShardedObject
from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

from nemotron.training.checkpoint.layout import CheckpointError

logger = logging.getLogger(__name__)

RNG_KEY = "rng_state"


def _parallel_position() -> tuple[int, int, int, int, int]:
    """(pp size, tp size, pp rank, tp rank, dp rank), all 1 / 0 when megatron's groups are not built."""
    if not parallel_state.model_parallel_is_initialized():
        return 1, 1, 0, 0, 0
    return (
        parallel_state.get_pipeline_model_parallel_world_size(),
        parallel_state.get_tensor_model_parallel_world_size(),
        parallel_state.get_pipeline_model_parallel_rank(),
        parallel_state.get_tensor_model_parallel_rank(),
        parallel_state.get_data_parallel_rank(with_context_parallel=True),
    )


def rng_state() -> dict:
    """This process's RNG states: Python, NumPy, torch CPU, torch CUDA and megatron's tracked states."""
    on_gpu = torch.cuda.is_available()
    return {
        "device": "cuda" if on_gpu else "cpu",
        "random": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if on_gpu else None,
        "tracker": {name: state.clone() for name, state in get_cuda_rng_tracker().get_states().items()},
    }


def rng_sharded_state(key: str = RNG_KEY) -> ShardedObject:
    """The RNG states as a ShardedObject over (pipeline, tensor) ranks; data-parallel replicas share one copy."""
    pp_size, tp_size, pp_rank, tp_rank, dp_rank = _parallel_position()
    return ShardedObject(key, rng_state(), (pp_size, tp_size), (pp_rank, tp_rank), replica_id=dp_rank)


def restore_rng(state: dict) -> None:
    """Restore the states of rng_state() / a loaded rng_sharded_state(); CUDA parts only on the device type saved."""
    if not isinstance(state, dict) or not {"random", "numpy", "torch", "tracker"} <= state.keys():
        raise CheckpointError(
            f"the checkpoint's {RNG_KEY} is not an RNG state saved by nemotron (got {type(state).__name__}); "
            "leave rng_state out of the load to start with fresh RNG states"
        )
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if state.get("device") != device:
        saved_on = state.get("device")
        logger.warning("RNG state saved on %s, running on %s: CUDA/tracker states not restored", saved_on, device)
        return
    if device == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    get_cuda_rng_tracker().set_states({name: value.clone() for name, value in state["tracker"].items()})

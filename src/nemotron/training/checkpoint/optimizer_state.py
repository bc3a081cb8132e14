"""A torch Adam/AdamW optimizer's state as megatron sharded tensors that follow (and reshard like) the model weights."""

from __future__ import annotations

from typing import Any

import torch
from megatron.core.dist_checkpointing.optimizer import (
    get_param_id_to_sharded_param_map,
    optim_state_to_sharding_state,
)

from nemotron.training.checkpoint.layout import CheckpointError

STEP_KEY = "common_step"
_FIX = "build the model and optimizer with the config (and param groups) the checkpoint was saved with"


def _check_supported(optimizer: torch.optim.Optimizer) -> None:
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        raise CheckpointError(
            f"optimizer_state supports torch Adam/AdamW, not {type(optimizer).__name__}; "
            "use nemotron.training.optim.optimizer.build_optimizer"
        )


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimizer's parameters in state_dict() order (the order behind its integer state ids)."""
    return [param for group in optimizer.param_groups for param in group["params"]]


def init_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter without state the state AdamW's first step would create (zeros, step 0).

    A fresh AdamW has no state until it steps; with it initialised the sharded dict has a buffer per
    moment to save or to load into. The first step then behaves exactly as on a fresh optimizer.
    """
    _check_supported(optimizer)
    for group in optimizer.param_groups:
        on_param = bool(group.get("fused") or group.get("capturable"))
        for param in group["params"]:
            state = optimizer.state[param]
            if state:
                continue
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device if on_param else "cpu")
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)


def _common_step(state: dict) -> torch.Tensor:
    """The step shared by every parameter (megatron stores one); differing steps cannot be stored."""
    steps = [param_state["step"] for param_state in state["state"].values() if "step" in param_state]
    if not steps:
        return torch.zeros((), dtype=torch.float32)
    first = steps[0]
    if any(float(step) != float(first) for step in steps):
        raise CheckpointError(
            "the optimizer's step differs between parameters, which the checkpoint cannot store "
            "(one step is shared); step every parameter group together"
        )
    return first.detach().clone() if isinstance(first, torch.Tensor) else torch.tensor(float(first))


def _unmapped_names(model: torch.nn.Module, params: list[torch.Tensor], ids: list[int]) -> list[str]:
    """Names (in `model`) of the optimizer parameters with the given state ids."""
    names = {id(param): name for name, param in model.named_parameters(remove_duplicate=False)}
    return [names.get(id(params[i]), f"<parameter #{i} not in the model>") for i in ids]


def optimizer_sharded_state_dict(
    optimizer: torch.optim.Optimizer, model_sharded_state_dict: dict, model: torch.nn.Module
) -> dict:
    """The optimizer state as a sharded dict: each moment a ShardedTensor keyed like its model weight.

    `model_sharded_state_dict` must be `model.sharded_state_dict()` (it holds the Parameters
    themselves). Moments become `optimizer.state.<exp_avg|exp_avg_sq>.<weight key>` with the weight's
    sharding and replica ids, so they reshard like the weights across parallel layouts; the step
    (shared by all parameters) and the param-group hyperparameters go to common.pt. Initialises
    the state of a fresh optimizer (see init_optimizer_state). Build it the same way to load.
    """
    init_optimizer_state(optimizer)
    state = optimizer.state_dict()
    params = _params(optimizer)
    id_map = get_param_id_to_sharded_param_map(model_sharded_state_dict, params)
    unmapped = [param_id for param_id in state["state"] if param_id not in id_map]
    if unmapped:
        raise CheckpointError(
            "optimizer parameters missing from the model's sharded state dict: "
            f"{', '.join(_unmapped_names(model, params, unmapped)[:5])}; pass model.sharded_state_dict() "
            "of the model the optimizer was built for"
        )
    step = _common_step(state)
    optim_state_to_sharding_state(state, id_map, exclude_keys=("step",))
    state[STEP_KEY] = step
    return state


def load_optimizer_state(optimizer: torch.optim.Optimizer, loaded: dict) -> None:
    """Put the loaded result of optimizer_sharded_state_dict() into `optimizer` (moments, step, group settings).

    The group hyperparameters (lr included) come from the checkpoint; an LR scheduler restored after
    this sets the learning rate for its step again.
    """
    _check_supported(optimizer)
    if not isinstance(loaded, dict) or not {"state", "param_groups"} <= loaded.keys():
        raise CheckpointError(
            "the loaded optimizer state lacks 'state' / 'param_groups'; load it with the dict built by "
            "optimizer_sharded_state_dict()"
        )
    groups: list[dict[str, Any]] = loaded["param_groups"]
    current = optimizer.param_groups
    if len(groups) != len(current) or any(
        len(a["params"]) != len(b["params"]) for a, b in zip(groups, current, strict=True)
    ):
        saved = [len(group["params"]) for group in groups]
        now = [len(group["params"]) for group in current]
        raise CheckpointError(
            f"the checkpoint's optimizer has param groups of sizes {saved}, this optimizer {now}; {_FIX}"
        )
    step = loaded.get(STEP_KEY)
    step = step if isinstance(step, torch.Tensor) else torch.tensor(float(step or 0), dtype=torch.float32)
    state = {param_id: {**tensors, "step": step.detach().clone()} for param_id, tensors in loaded["state"].items()}
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"the checkpoint's optimizer state does not fit this optimizer ({err}); {_FIX}") from err

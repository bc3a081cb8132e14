"""LoRA adapters on megatron-core's parallel linear layers: attach (frozen base, zero B), checkpoint keys, merge.

A targeted layer `y = W x` becomes `y = W x + (alpha / rank) * B A dropout(x)`, with A [rank, in] and
B [out, rank] kept as parameters `lora_a` / `lora_b` on the layer itself, so the base weights keep
their checkpoint keys (a base checkpoint loads unchanged) and the adapters get keys of their own
(`...linear_qkv.lora_a`). B starts at zero: before the first update the model is the base model.

Tensor parallel: a column-parallel layer (linear_qkv, linear_fc1) sees the whole input and owns a
slice of the outputs, so A is whole and B is split like W (axis 0); the rank-sized activation
`A x` goes through megatron's copy-to-region so A's gradient sums the slices' contributions. A
row-parallel layer (linear_proj, linear_fc2) sees a slice of the input: A is split like W (axis 1),
`A x` is all-reduced before the whole B. Sequence parallelism is not supported with LoRA.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from typing import Any

import torch

from nemotron.training.errors import TrainingError
from nemotron.training.model.lora_settings import COLUMN_PARALLEL, LORA_TARGETS, LoraSettings, is_adapter_key


class LoraError(TrainingError):
    """LoRA cannot be attached as configured; the message names the setting and the fix."""


def _targets(model: torch.nn.Module, names: tuple[str, ...]) -> Iterator[tuple[str, torch.nn.Module]]:
    for path, module in model.named_modules():
        leaf = path.rsplit(".", 1)[-1]
        if leaf in names:
            yield path, module


def attach_lora(model: torch.nn.Module, settings: LoraSettings, seed: int = 0) -> int:
    """Freeze every parameter of `model` and give each target layer an adapter; the number of adapters.

    A is initialised like megatron's linear weights would be (Kaiming-uniform), from `seed` and the
    layer's name, so every tensor-parallel rank draws the same whole A for column-parallel layers.
    """
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    count = 0
    for path, module in _targets(model, settings.target_modules):
        if hasattr(module, "layer_norm_weight"):
            raise LoraError(
                f"{path} is a Transformer Engine layer with a fused layer norm; LoRA supports megatron-core's local "
                "layers only for now (CPU, or GPU without Transformer Engine); set peft.kind=null for full fine-tuning"
            )
        if getattr(module, "sequence_parallel", False):
            raise LoraError(f"{path}: LoRA does not support sequence parallelism; set parallel.sequence_parallel=false")
        _attach(module, path, settings, seed)
        count += 1
    if count == 0:
        raise LoraError(
            f"no layer named {', '.join(settings.target_modules)} in the model; peft.target_modules must be among "
            f"{', '.join(LORA_TARGETS)}"
        )
    return count


def _attach(module: Any, path: str, settings: LoraSettings, seed: int) -> None:
    weight = module.weight
    out_local, in_local = weight.shape
    column = path.rsplit(".", 1)[-1] in COLUMN_PARALLEL
    generator = torch.Generator().manual_seed(seed + sum(path.encode()))
    in_whole = in_local if column else in_local * _tp_size()
    a = torch.empty(settings.rank, in_whole, dtype=weight.dtype)
    bound = 1.0 / math.sqrt(in_whole)  # kaiming_uniform(a=sqrt(5)) as torch.nn.Linear initialises
    a.uniform_(-bound, bound, generator=generator)
    if not column:  # this rank's slice of A's input axis, as W's
        a = a.chunk(_tp_size(), dim=1)[_tp_rank()].contiguous()
    module.lora_a = torch.nn.Parameter(a.to(weight.device))
    module.lora_b = torch.nn.Parameter(torch.zeros(out_local, settings.rank, dtype=weight.dtype, device=weight.device))
    module.lora_settings = settings
    module.lora_column = column
    module.lora_dropout = torch.nn.Dropout(settings.dropout)
    module.lora_hook = module.register_forward_hook(_add_adapter)
    gated = path.endswith("linear_fc1") and getattr(module.config, "gated_linear_unit", False)
    plain = module.sharded_state_dict
    module.sharded_state_dict = types.MethodType(_adapter_sharding(plain, column, gated), module)


def _add_adapter(module: Any, args: tuple, output: Any) -> Any:
    from megatron.core.tensor_parallel.mappings import (
        copy_to_tensor_model_parallel_region,
        reduce_from_tensor_model_parallel_region,
    )

    x = module.lora_dropout(args[0])
    hidden = torch.nn.functional.linear(x, module.lora_a)
    hidden = (
        copy_to_tensor_model_parallel_region(hidden)
        if module.lora_column
        else reduce_from_tensor_model_parallel_region(hidden)
    )
    delta = torch.nn.functional.linear(hidden, module.lora_b) * module.lora_settings.scale
    result, bias = output
    return result + delta.to(result.dtype), bias


def _adapter_sharding(plain: Any, column: bool, gated: bool) -> Any:
    """The layer's sharded_state_dict with the adapters split along their tensor-parallel axis.

    A gated MLP's linear_fc1 holds [gate slice; up slice] on each rank, not one contiguous slice of the
    whole [gate; up]: its B rows are laid out alike, so B gets the same swiglu factory as the weight
    (megatron's MLP applies it to `linear_fc1.weight` only).
    """

    def sharded_state_dict(self: Any, prefix: str = "", sharded_offsets: tuple = (), metadata: Any = None) -> dict:
        from megatron.core.transformer.mlp import apply_swiglu_sharded_factory
        from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

        state = plain(prefix, sharded_offsets, metadata)
        adapters = {"lora_a": self.lora_a, "lora_b": self.lora_b}
        axis = {"lora_b": 0} if column else {"lora_a": 1}
        sharded = make_sharded_tensors_for_checkpoint(
            adapters,
            prefix,
            axis,
            sharded_offsets,
            tp_group=self.tp_group,
            dp_cp_group=(metadata or {}).get("dp_cp_group") or _dp_cp_group(),
        )
        if gated:
            key = f"{prefix}lora_b"
            singleton = (metadata or {}).get("singleton_local_shards", False)
            sharded[key] = apply_swiglu_sharded_factory(sharded[key], sharded_offsets, singleton)
        state.update(sharded)
        return state

    return sharded_state_dict


def merge_lora(model: torch.nn.Module) -> int:
    """Fold every adapter into its layer's weight (W += scale * B A) and remove it; the layers merged."""
    merged = 0
    for _, module in list(model.named_modules()):
        if not hasattr(module, "lora_a"):
            continue
        with torch.no_grad():
            update = module.lora_b.float() @ module.lora_a.float() * module.lora_settings.scale
            module.weight.add_(update.to(module.weight.dtype))
        module.lora_hook.remove()
        for name in ("lora_a", "lora_b"):
            delattr(module, name)
        del module.lora_dropout, module.lora_hook, module.lora_settings, module.lora_column, module.sharded_state_dict
        merged += 1
    return merged


def _tp_size() -> int:
    from megatron.core import parallel_state

    return (
        parallel_state.get_tensor_model_parallel_world_size() if parallel_state.model_parallel_is_initialized() else 1
    )


def _tp_rank() -> int:
    from megatron.core import parallel_state

    return parallel_state.get_tensor_model_parallel_rank() if parallel_state.model_parallel_is_initialized() else 0


def _dp_cp_group() -> Any:
    from megatron.core import parallel_state

    return parallel_state.get_data_parallel_group(with_context_parallel=True)


def checkpoint_part(model_state: dict[str, Any]) -> dict[str, Any]:
    """What a run's checkpoint holds of the model: only the adapters when it has any, else everything."""
    adapters = {key: value for key, value in model_state.items() if is_adapter_key(key)}
    return adapters or model_state


def base_part(model_state: dict[str, Any]) -> dict[str, Any]:
    """The model's own weights, without adapters (what a starting checkpoint provides)."""
    return {key: value for key, value in model_state.items() if not is_adapter_key(key)}


def load_part(module: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load `state` (the adapters, or the base weights) into `module`; any other key missing is an error."""
    result = module.load_state_dict(state, strict=False)
    adapters_given = any(is_adapter_key(key) for key in state)
    missing = [key for key in result.missing_keys if is_adapter_key(key) == adapters_given]
    missing = [key for key in missing if not key.endswith("_extra_state")]
    if missing or result.unexpected_keys:
        raise LoraError(
            f"the loaded weights do not fit the model: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )

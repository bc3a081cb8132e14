"""Mixed bf16 on the CPU: fp32 weights, gradients and optimizer state, matrix products in bf16 through autocast."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from nemotron.training.model.config import ModelConfig, device_type, resolved_precision


def cpu_mixed_bf16(model: ModelConfig, device: object) -> bool:
    """Whether this model computes in bf16 on the CPU (model.precision bf16 there; its weights stay fp32)."""
    return device_type(device) == "cpu" and resolved_precision(model, device) == "bf16"


def weights_dtype(model: ModelConfig, device: object) -> torch.dtype:
    """The dtype the weights are built in: fp32 on the CPU whatever the precision, bf16 for bf16 on a GPU."""
    if device_type(device) == "cpu" or resolved_precision(model, device) == "fp32":
        return torch.float32
    return torch.bfloat16


def compute_autocast(model: ModelConfig, device: object) -> AbstractContextManager[object]:
    """The context a forward and backward pass of this model runs in: bf16 autocast for mixed bf16 on the CPU.

    The backward pass must run inside it too: megatron's linear layers multiply the bf16 output gradient by
    the fp32 weight, which only autocast reconciles.
    """
    if cpu_mixed_bf16(model, device):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def autocast_forward(module: torch.nn.Module, model: ModelConfig, device: object) -> None:
    """Make every forward call of `module` (generation, evaluation, training) compute as `model` says.

    Under mixed bf16 on the CPU the output layer stays fp32: logits rounded to bf16 are off by up to ~0.1 at
    the magnitudes a trained model reaches, which held the tiny SFT at 41% held-out exact match where fp32
    logits reach ~70%. The module's weights and state dict are unchanged; for anything else, a no-op.
    """
    if not cpu_mixed_bf16(model, device):
        return
    module.forward = torch.autocast("cpu", dtype=torch.bfloat16)(module.forward)
    output_layer = getattr(module, "output_layer", None)  # absent on a pipeline stage without the head
    if output_layer is not None:
        output_layer.forward = _fp32_output(output_layer.forward)
    # RMSNorm gets bf16 activations and its fp32 weight: torch's unfused kernel, same result, said once per run
    warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")


def _fp32_output(forward: Callable[..., Any]) -> Callable[..., Any]:
    """The output layer's forward outside autocast, on fp32 hidden states (its backward still runs in bf16)."""

    def fp32_forward(input_: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast("cpu", enabled=False):
            return forward(input_.float(), *args, **kwargs)

    return fp32_forward


def describe_precision(model: ModelConfig, device: object) -> str:
    """One phrase for the run log: how this model computes on this device."""
    if cpu_mixed_bf16(model, device):
        return "bf16 mixed (fp32 weights and optimizer, bf16 matrix products)"
    return resolved_precision(model, device)

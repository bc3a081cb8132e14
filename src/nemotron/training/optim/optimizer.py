"""AdamW with weight decay only on matrices, and gradient clipping that reports the pre-clip norm."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nemotron.config.errors import ConfigError
from nemotron.ranges import is_number, is_positive_number

if TYPE_CHECKING:  # torch loads where an optimizer is built, not where a config is validated at launch
    import torch


class OptimizerConfigError(ConfigError):
    """An optimizer setting is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW hyperparameters and the gradient-clipping threshold.

    ``lr`` is only the initial value: the LR scheduler overwrites it every step.
    ``clip_grad`` is the max global L2 norm of the gradients (megatron-core's ``clip_grad``);
    ``null`` measures the norm without clipping. The defaults are the usual LLM-pretraining
    values (betas 0.9/0.95, weight decay 0.1, clip 1.0) used by the Nemotron recipes.
    """

    lr: float = 3.0e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1.0e-8
    clip_grad: float | None = 1.0

    def __post_init__(self) -> None:
        if not is_positive_number(self.lr):
            raise OptimizerConfigError(f"optimizer: lr={self.lr!r} must be a positive number, e.g. lr: 3.0e-4.")
        if not (is_number(self.weight_decay) and self.weight_decay >= 0):
            raise OptimizerConfigError(
                f"optimizer: weight_decay={self.weight_decay!r} must be >= 0 (0 disables it), e.g. 0.1."
            )
        for key, value in (("beta1", self.beta1), ("beta2", self.beta2)):
            if not (is_number(value) and 0.0 <= value < 1.0):
                raise OptimizerConfigError(
                    f"optimizer: {key}={value!r} must be in [0, 1), e.g. beta1: 0.9, beta2: 0.95."
                )
        if not is_positive_number(self.eps):
            raise OptimizerConfigError(f"optimizer: eps={self.eps!r} must be a positive number, e.g. eps: 1.0e-8.")
        if self.clip_grad is not None and not is_positive_number(self.clip_grad):
            raise OptimizerConfigError(
                f"optimizer: clip_grad={self.clip_grad!r} must be a positive number (e.g. 1.0), or null to not clip."
            )


@dataclass(frozen=True)
class ParameterSplit:
    """Trainable parameter names, split by whether AdamW decays them."""

    decay: tuple[str, ...]
    no_decay: tuple[str, ...]


def _exempt_from_decay(module_path: str, module: torch.nn.Module, leaf: str, param: torch.Tensor) -> bool:
    """True for biases, normalization weights and other vectors/scalars.

    Rules (any one exempts): the tensor has fewer than 2 dimensions (biases, norm gains, scalars,
    as megatron-core's default ``no_weight_decay_cond``); the parameter is called ``bias``; it
    belongs to a module whose class name or attribute path contains "norm" (LayerNorm, RMSNorm,
    ``final_layernorm``, ``q_norm``...), so norm weights stay exempt even if stored 2-D.
    Embedding and output matrices are 2-D and *are* decayed, like megatron-core's default and
    GPT-style recipes: they are ordinary weight matrices and decaying them keeps their norm bounded.
    """
    if param.ndim < 2 or leaf == "bias":
        return True
    if "norm" in type(module).__name__.lower():
        return True
    return any("norm" in part.lower() for part in module_path.split(".") if part)


def split_parameters(model: torch.nn.Module) -> ParameterSplit:
    """Name every trainable parameter of ``model`` as decayed or not (shared ones once)."""
    decay: list[str] = []
    no_decay: list[str] = []
    seen: set[int] = set()
    for module_path, module in model.named_modules():
        for leaf, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_path}.{leaf}" if module_path else leaf
            (no_decay if _exempt_from_decay(module_path, module, leaf, param) else decay).append(name)
    return ParameterSplit(decay=tuple(decay), no_decay=tuple(no_decay))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Torch param groups: matrices with ``weight_decay``, biases/norms/vectors with 0.

    Each group also carries a ``"name"`` ("decay" or "no_decay") for logging. Empty groups are
    left out; a model with no trainable parameters is an error.
    """
    split = split_parameters(model)
    by_name = dict(model.named_parameters(remove_duplicate=False))
    groups = []
    for group_name, names, decay in (("decay", split.decay, weight_decay), ("no_decay", split.no_decay, 0.0)):
        if names:
            groups.append({"name": group_name, "params": [by_name[n] for n in names], "weight_decay": decay})
    if not groups:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameters (all have requires_grad=False); nothing to optimize."
        )
    return groups


def build_optimizer(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.AdamW:
    """A torch AdamW over ``model`` with the decay/no-decay groups of ``param_groups``."""
    import torch

    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
    )


def clip_gradients(params: Iterable[torch.Tensor], max_norm: float | None) -> float:
    """Clip the global L2 norm of the gradients to ``max_norm`` in place; return the norm before.

    Parameters without a gradient are skipped (0.0 when none has one). A non-finite norm
    (inf/nan) is returned as is and the gradients are left untouched, so the caller's
    divergence guard can skip the step. ``max_norm=None`` only measures. This is the
    norm over the tensors given (one process); under model parallelism megatron-core's
    optimizer computes the norm across ranks itself.
    """
    import torch

    if max_norm is not None and not is_positive_number(max_norm):
        raise ValueError(f"max_norm must be a positive number or None, got {max_norm!r}")
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return 0.0
    grads = [grad for p in with_grad if (grad := p.grad) is not None]
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False)
    norm = float(total.item())
    if max_norm is not None and math.isfinite(norm):
        torch.nn.utils.clip_grads_with_norm_(with_grad, max_norm, total)
    return norm

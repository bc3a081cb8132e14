"""AdamW parameter groups (no decay for norms/biases), config validation and gradient clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nemotron.config.errors import ConfigError
from nemotron.training.optim.optimizer import (
    OptimizerConfig,
    OptimizerConfigError,
    build_optimizer,
    clip_gradients,
    param_groups,
    split_parameters,
)


class RMSNorm(nn.Module):
    """A hand-written RMSNorm, as model code defines them (not a torch.nn class)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class GatedScale(nn.Module):
    """A 2-D parameter in a module whose attribute name says it is a norm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2, dim))


class ScaleNorm(nn.Module):
    """A norm class whose 2-D parameter has a neutral attribute name."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(2, dim))


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(11, 4)
        self.input_layernorm = nn.LayerNorm(4)
        self.proj = nn.Linear(4, 4)
        self.out = nn.Linear(4, 4, bias=False)
        self.final_norm = RMSNorm(4)
        self.q_norm = GatedScale(4)
        self.post = ScaleNorm(4)
        self.head = nn.Linear(4, 11, bias=False)
        self.head.weight = self.embedding.weight  # tied: must appear once
        self.frozen = nn.Linear(4, 2)
        self.frozen.requires_grad_(False)


DECAYED = {"embedding.weight", "proj.weight", "out.weight"}
EXEMPT = {
    "input_layernorm.weight",  # torch LayerNorm
    "input_layernorm.bias",
    "proj.bias",  # Linear bias
    "final_norm.weight",  # custom RMSNorm (1-D)
    "q_norm.scale",  # 2-D, but the attribute path says norm
    "post.gain",  # 2-D, but the class name says norm
}


def test_split_excludes_norms_and_biases_and_keeps_embeddings_decayed():
    split = split_parameters(TinyModel())
    assert set(split.decay) == DECAYED
    assert set(split.no_decay) == EXEMPT
    assert len(split.decay) + len(split.no_decay) == len(DECAYED | EXEMPT)  # tied weight once, frozen none


def test_param_groups_hold_each_trainable_parameter_once():
    model = TinyModel()
    groups = param_groups(model, weight_decay=0.05)
    by_name = {group["name"]: group for group in groups}
    assert by_name["decay"]["weight_decay"] == 0.05
    assert by_name["no_decay"]["weight_decay"] == 0.0
    params = dict(model.named_parameters())
    assert {id(p) for p in by_name["decay"]["params"]} == {id(params[n]) for n in DECAYED}
    assert {id(p) for p in by_name["no_decay"]["params"]} == {id(params[n]) for n in EXEMPT}


def test_param_groups_drop_empty_groups_and_refuse_frozen_models():
    only_matrix = nn.Linear(3, 3, bias=False)
    assert [g["name"] for g in param_groups(only_matrix, 0.1)] == ["decay"]
    frozen = nn.Linear(3, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(frozen, 0.1)


def test_build_optimizer_is_adamw_with_config_values():
    cfg = OptimizerConfig(lr=2e-4, weight_decay=0.1, beta1=0.8, beta2=0.99, eps=1e-6, clip_grad=1.0)
    optimizer = build_optimizer(TinyModel(), cfg)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    for group in optimizer.param_groups:
        assert group["lr"] == 2e-4
        assert group["betas"] == (0.8, 0.99)
        assert group["eps"] == 1e-6


def test_adamw_step_decays_only_the_decay_group():
    torch.manual_seed(0)
    model = TinyModel()
    optimizer = build_optimizer(model, OptimizerConfig(lr=0.1, weight_decay=0.5))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)  # zero gradient: only decoupled weight decay moves weights
    optimizer.step()
    after = dict(model.named_parameters())
    for name in DECAYED:
        assert torch.allclose(after[name], before[name] * (1 - 0.1 * 0.5)), name
    for name in EXEMPT:
        assert torch.equal(after[name], before[name]), name


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lr": 0.0}, "lr=0.0"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1"),
        ({"beta1": 1.0}, "beta1=1.0"),
        ({"beta2": -0.5}, "beta2=-0.5"),
        ({"eps": 0}, "eps=0"),
        ({"clip_grad": 0.0}, "or null to not clip"),
    ],
)
def test_invalid_config_names_the_key(kwargs, needle):
    with pytest.raises(OptimizerConfigError) as info:
        OptimizerConfig(**kwargs)
    assert needle in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_clip_config_may_be_disabled():
    assert OptimizerConfig(clip_grad=None).clip_grad is None


def _params_with_grads(*grads):
    params = []
    for grad in grads:
        p = nn.Parameter(torch.zeros(2))
        p.grad = None if grad is None else torch.tensor(grad, dtype=torch.float32)
        params.append(p)
    return params


def _norm(params) -> float:
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))


def test_clip_returns_the_norm_before_clipping_and_clips():
    params = _params_with_grads([3.0, 0.0], [0.0, 4.0], None)
    norm = clip_gradients(params, max_norm=1.0)
    assert norm == pytest.approx(5.0)
    assert _norm(params) == pytest.approx(1.0, rel=1e-4)
    assert params[0].grad.tolist() == pytest.approx([0.6, 0.0], rel=1e-4)  # direction kept


def test_clip_leaves_small_gradients_alone():
    params = _params_with_grads([3.0, 0.0], [0.0, 4.0])
    assert clip_gradients(params, max_norm=10.0) == pytest.approx(5.0)
    assert params[1].grad.tolist() == [0.0, 4.0]


def test_clip_none_only_measures():
    params = _params_with_grads([30.0, 40.0])
    assert clip_gradients(params, max_norm=None) == pytest.approx(50.0)
    assert params[0].grad.tolist() == [30.0, 40.0]


def test_clip_without_any_gradient_is_zero():
    assert clip_gradients(_params_with_grads(None, None), max_norm=1.0) == 0.0


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clip_returns_non_finite_norm_and_leaves_gradients(bad):
    params = _params_with_grads([bad, 1.0], [2.0, 2.0])
    norm = clip_gradients(params, max_norm=1.0)
    assert not math.isfinite(norm)
    assert math.isnan(norm) == math.isnan(bad)
    assert params[1].grad.tolist() == [2.0, 2.0]


def test_clip_rejects_bad_max_norm():
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradients(_params_with_grads([1.0, 1.0]), max_norm=0.0)

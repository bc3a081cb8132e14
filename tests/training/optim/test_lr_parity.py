"""Our LR schedules against megatron-core's OptimizerParamScheduler, step by step, for the same settings.

The one documented difference is the warmup index: megatron-core's counter starts at 0 and its first
update (counter 0) has lr = init_lr = 0, so Megatron-LM wastes the first step; ours gives optimizer
step s < W the value megatron-core reaches at counter s + 1 (lr * (s + 1) / W), and from the end of
warmup on step s has exactly megatron-core's value at counter s.
"""

from __future__ import annotations

import pytest
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

from nemotron.training.optim.lr_schedules import LRScheduleConfig, LRScheduler, decay_iters_for, warmup_iters_for

TRAIN_ITERS = 240


class _Groups:
    """The one attribute both schedulers touch: torch's `param_groups`."""

    def __init__(self) -> None:
        self.param_groups = [{"lr": 0.0, "weight_decay": 0.0}]


def _megatron(cfg: LRScheduleConfig, train_iters: int) -> OptimizerParamScheduler:
    kind = {"cosine": "cosine", "wsd": "WSD", "constant": "constant"}[cfg.kind]
    return OptimizerParamScheduler(
        _Groups(),
        init_lr=0.0,
        max_lr=cfg.lr,
        min_lr=cfg.min_lr,
        lr_warmup_steps=warmup_iters_for(cfg, train_iters),
        lr_decay_steps=train_iters,
        lr_decay_style=kind,
        start_wd=0.1,
        end_wd=0.1,
        wd_incr_steps=train_iters,
        wd_incr_style="constant",
        wsd_decay_steps=decay_iters_for(cfg, train_iters) if cfg.kind == "wsd" else None,
        lr_wsd_decay_style=cfg.decay_style if cfg.kind == "wsd" else None,
    )


def _megatron_curve(cfg: LRScheduleConfig, train_iters: int, steps: int) -> list[float]:
    scheduler = _megatron(cfg, train_iters)
    values = []
    for _ in range(steps):
        values.append(scheduler.get_lr(scheduler.optimizer.param_groups[0]))
        scheduler.step(1)
    return values


CASES = [
    LRScheduleConfig(lr=3e-3, kind="cosine", min_lr=3e-4, warmup_iters=20),
    LRScheduleConfig(lr=3e-3, kind="cosine", min_lr=0.0, warmup_iters=0),
    LRScheduleConfig(lr=1e-3, kind="cosine", min_lr=1e-5, warmup_fraction=0.05),
    LRScheduleConfig(lr=2e-3, kind="constant", warmup_iters=16),
    LRScheduleConfig(lr=2e-3, kind="constant"),
    *[
        LRScheduleConfig(lr=3e-3, kind="wsd", min_lr=3e-5, warmup_iters=24, decay_fraction=0.25, decay_style=style)
        for style in ("minus_sqrt", "linear", "cosine", "exponential")
    ],
    LRScheduleConfig(lr=3e-3, kind="wsd", min_lr=0.0, warmup_iters=0, decay_fraction=1.0, decay_style="linear"),
]


@pytest.mark.parametrize(
    "cfg",
    CASES,
    ids=lambda c: f"{c.kind}-{c.decay_style if c.kind == 'wsd' else ''}-w{c.warmup_iters}{c.warmup_fraction or ''}",
)
def test_every_step_equals_megatron_core(cfg):
    steps = TRAIN_ITERS + 5  # past the end: both hold the final value
    reference = _megatron_curve(cfg, TRAIN_ITERS, steps + 1)
    warmup = warmup_iters_for(cfg, TRAIN_ITERS)
    ours = LRScheduler(_Groups(), cfg, TRAIN_ITERS)
    for step in range(steps):
        counter = step + 1 if step < warmup else step
        assert ours.current_lr == pytest.approx(reference[counter], rel=1e-12, abs=1e-15), (cfg, step)
        assert ours.optimizer.param_groups[0]["lr"] == ours.current_lr
        ours.step()


def test_the_comparison_can_fail():
    """A schedule of another length differs from megatron-core's somewhere (the test is not vacuous)."""
    cfg = CASES[0]
    reference = _megatron_curve(cfg, TRAIN_ITERS, TRAIN_ITERS)
    other = LRScheduler(_Groups(), cfg, TRAIN_ITERS + 10)
    values = []
    for _ in range(TRAIN_ITERS):
        values.append(other.current_lr)
        other.step()
    assert any(abs(a - b) > 1e-9 for a, b in zip(values[20:], reference[20:], strict=True))

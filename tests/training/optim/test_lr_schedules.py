"""Learning-rate schedule values, shapes, validation and scheduler resume."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch

from nemotron.config.errors import ConfigError
from nemotron.training.optim.lr_schedules import (
    LRScheduleConfig,
    LRScheduleError,
    LRScheduler,
    lr_at,
    scaled_lr,
    validate_schedule,
)

TOTAL = 110


def cosine(**kw) -> LRScheduleConfig:
    return LRScheduleConfig(**{"kind": "cosine", "lr": 1.0, "min_lr": 0.1, "warmup_iters": 10, **kw})


def wsd(**kw) -> LRScheduleConfig:
    base = {"kind": "wsd", "lr": 1.0, "min_lr": 0.0, "warmup_iters": 10, "decay_fraction": 0.2}
    return LRScheduleConfig(**{**base, **kw})


# Values below are worked out by hand: warmup gives lr*(step+1)/10, cosine decays over steps
# 10..110, WSD (110 steps, decay_fraction 0.2) decays over the last 22 steps, from step 88.


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.1),  # first warmup step: lr / warmup_iters
        (4, 0.5),
        (9, 1.0),  # last warmup step reaches lr
        (10, 1.0),  # decay starts at lr
        (35, 0.868198052),  # quarter way: 0.1 + 0.45 * (1 + cos(pi/4))
        (60, 0.55),  # half way: midpoint of lr and min_lr
        (110, 0.1),  # end: min_lr
        (500, 0.1),  # past the end: stays at min_lr
    ],
)
def test_cosine_values(step, expected):
    assert lr_at(step, TOTAL, cosine()) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("style", "mid_decay"),
    [
        ("linear", 0.5),
        ("cosine", 0.5),
        ("minus_sqrt", 0.292893219),  # 1 - sqrt(0.5)
        ("exponential", 0.414213562),  # 2 * 0.5**0.5 - 1
    ],
)
def test_wsd_values(style, mid_decay):
    cfg = wsd(decay_style=style)
    assert lr_at(0, TOTAL, cfg) == pytest.approx(0.1)
    assert lr_at(9, TOTAL, cfg) == pytest.approx(1.0)
    assert lr_at(88, TOTAL, cfg) == pytest.approx(1.0)  # decay phase starts at lr
    assert lr_at(99, TOTAL, cfg) == pytest.approx(mid_decay, abs=1e-9)
    assert lr_at(TOTAL, TOTAL, cfg) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(TOTAL + 50, TOTAL, cfg) == pytest.approx(0.0, abs=1e-12)


def test_wsd_decays_to_min_lr_not_zero():
    cfg = wsd(decay_style="linear", min_lr=0.1)
    assert lr_at(99, TOTAL, cfg) == pytest.approx(0.55)
    assert lr_at(TOTAL, TOTAL, cfg) == pytest.approx(0.1)


def test_wsd_is_flat_between_warmup_and_decay():
    cfg = wsd()
    assert {lr_at(s, TOTAL, cfg) for s in range(9, 89)} == {1.0}
    assert lr_at(89, TOTAL, cfg) < 1.0


def test_wsd_default_decay_style_is_minus_sqrt():
    assert wsd().decay_style == "minus_sqrt"


def test_constant_values():
    cfg = LRScheduleConfig(kind="constant", lr=2.0, min_lr=0.0, warmup_iters=4)
    assert [lr_at(s, 10, cfg) for s in range(6)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    assert lr_at(9, 10, cfg) == 2.0
    assert lr_at(40, 10, cfg) == 2.0


def test_no_warmup_starts_at_lr():
    assert lr_at(0, 100, LRScheduleConfig(kind="cosine", lr=1.0, min_lr=0.0)) == 1.0


def test_warmup_fraction():
    cfg = LRScheduleConfig(kind="constant", lr=1.0, warmup_fraction=0.05)
    assert lr_at(0, 100, cfg) == pytest.approx(0.2)  # 5 warmup steps
    assert lr_at(4, 100, cfg) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "cfg",
    [cosine(), wsd(), wsd(decay_style="linear"), wsd(decay_style="cosine"), wsd(decay_style="exponential")],
    ids=["cosine", "wsd-minus_sqrt", "wsd-linear", "wsd-cosine", "wsd-exponential"],
)
def test_rises_in_warmup_then_never_rises(cfg):
    values = [lr_at(s, TOTAL, cfg) for s in range(TOTAL + 1)]
    warmup, rest = values[:10], values[10:]
    assert all(a < b for a, b in itertools.pairwise(warmup))
    assert all(a >= b for a, b in itertools.pairwise(rest))
    assert rest[-1] < rest[0]


def test_sqrt_scaling_with_global_batch_size():
    cfg = cosine(lr=1e-3, min_lr=1e-4, lr_scaling="sqrt", reference_global_batch_size=256)
    assert scaled_lr(cfg, 1024) == pytest.approx(2e-3)
    assert scaled_lr(cfg, 64) == pytest.approx(5e-4)
    assert scaled_lr(cfg, 256) == pytest.approx(1e-3)
    assert lr_at(9, TOTAL, cfg, global_batch_size=1024) == pytest.approx(2e-3)
    assert lr_at(TOTAL, TOTAL, cfg, global_batch_size=1024) == pytest.approx(2e-4)  # min_lr scales too


def test_no_scaling_ignores_batch_size():
    cfg = cosine(lr=1e-3, min_lr=1e-4)
    assert scaled_lr(cfg, 4096) == 1e-3
    assert lr_at(9, TOTAL, cfg, global_batch_size=4096) == pytest.approx(1e-3)


def test_sqrt_scaling_needs_the_batch_size():
    cfg = cosine(lr_scaling="sqrt", reference_global_batch_size=256)
    with pytest.raises(LRScheduleError, match="global_batch_size"):
        lr_at(5, TOTAL, cfg)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_lr": 2.0}, "min_lr=2 is above lr=1"),
        ({"lr": 0.0}, "lr=0.0 must be a positive number"),
        ({"warmup_iters": 5, "warmup_fraction": 0.1}, "keep one"),
        ({"warmup_iters": None, "warmup_fraction": 1.0}, "warmup_fraction=1.0 must be in [0, 1)"),
        ({"warmup_iters": -1}, "warmup_iters=-1"),
        ({"kind": "wsd", "decay_fraction": 0.0}, "decay_fraction=0.0 must be in (0, 1]"),
        ({"kind": "wsd", "decay_fraction": 1.5}, "decay_fraction=1.5"),
        ({"kind": "wsd", "decay_style": "1-sqrt"}, "spelled minus_sqrt"),
        ({"kind": "linear"}, "kind='linear' is unknown"),
        ({"lr_scaling": "sqrt"}, "reference_global_batch_size"),
        ({"lr_scaling": "linear", "reference_global_batch_size": 8}, "lr_scaling='linear' is unknown"),
    ],
)
def test_invalid_settings_name_the_key(kwargs, needle):
    with pytest.raises(LRScheduleError) as info:
        cosine(**kwargs)
    assert needle in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_warmup_must_be_shorter_than_training():
    with pytest.raises(LRScheduleError, match=r"warmup \(110 iterations\) must be shorter than training"):
        lr_at(0, TOTAL, cosine(warmup_iters=110))
    with pytest.raises(LRScheduleError, match="warmup_fraction"):
        validate_schedule(cosine(warmup_iters=None, warmup_fraction=0.5), 1)  # rounds to 1 of 1 step


def test_warmup_and_wsd_decay_must_fit():
    with pytest.raises(LRScheduleError, match=r"decay \(55 iterations.*exceed training \(110"):
        validate_schedule(wsd(warmup_iters=60, decay_fraction=0.5), TOTAL)
    validate_schedule(wsd(warmup_iters=55, decay_fraction=0.5), TOTAL)  # exactly fits: no stable phase


def test_total_iters_must_be_positive():
    with pytest.raises(LRScheduleError, match="positive integer"):
        lr_at(0, 0, cosine(warmup_iters=None))


def _optimizer() -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    return torch.optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=123.0)


def test_scheduler_sets_every_group_each_step():
    cfg = wsd(min_lr=0.01)
    optimizer = _optimizer()
    scheduler = LRScheduler(optimizer, cfg, TOTAL)
    seen = []
    for _ in range(TOTAL):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen == [[lr_at(s, TOTAL, cfg)] * 2 for s in range(TOTAL)]
    assert scheduler.current_step == TOTAL
    assert scheduler.current_lr == pytest.approx(0.01)


def test_scheduler_applies_batch_size_scaling():
    cfg = cosine(lr_scaling="sqrt", reference_global_batch_size=4)
    optimizer = _optimizer()
    scheduler = LRScheduler(optimizer, cfg, TOTAL, global_batch_size=16)
    for _ in range(9):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0)


def test_scheduler_resume_continues_identically():
    cfg = cosine(min_lr=0.05)
    first_opt = _optimizer()
    first = LRScheduler(first_opt, cfg, TOTAL)
    for _ in range(37):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    expected = [first.step() for _ in range(40)]

    buffer.seek(0)
    resumed_opt = _optimizer()
    resumed = LRScheduler(resumed_opt, cfg, TOTAL)
    assert resumed_opt.param_groups[0]["lr"] == pytest.approx(0.1)  # fresh: step 0
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.current_step == 37
    assert resumed_opt.param_groups[0]["lr"] == pytest.approx(lr_at(37, TOTAL, cfg))
    assert [resumed.step() for _ in range(40)] == expected
    assert math.isclose(resumed_opt.param_groups[1]["lr"], expected[-1])


def test_scheduler_start_step_matches_resume():
    cfg = wsd()
    optimizer = _optimizer()
    LRScheduler(optimizer, cfg, TOTAL, start_step=95)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(lr_at(95, TOTAL, cfg))


def test_scheduler_rejects_bad_state():
    scheduler = LRScheduler(_optimizer(), cosine(), TOTAL)
    with pytest.raises(ValueError, match="integer 'step'"):
        scheduler.load_state_dict({"last_epoch": 3})
    with pytest.raises(ValueError, match="integer 'step'"):
        scheduler.load_state_dict({"step": -1})


def test_scheduler_validates_the_schedule():
    with pytest.raises(LRScheduleError, match="shorter than training"):
        LRScheduler(_optimizer(), cosine(warmup_iters=10), 10)

"""DivergenceGuard: non-finite losses and spikes over the moving average stop training; normal noise does not."""

from __future__ import annotations

import pytest

from nemotron.config.errors import ConfigError
from nemotron.training.loop.divergence import DivergenceError, DivergenceGuard
from nemotron.training.run.config import GuardSection


def feed(guard: DivergenceGuard, losses: list[float]) -> None:
    for step, loss in enumerate(losses, start=1):
        guard.check(step, loss)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_even_on_the_first_step(bad):
    with pytest.raises(DivergenceError, match=r"step 1: the training loss is (nan|inf)"):
        DivergenceGuard(GuardSection()).check(1, bad)


def test_a_spike_far_above_the_moving_average_stops():
    guard = DivergenceGuard(GuardSection(spike_factor=3.0, window=5, warmup_steps=5))
    feed(guard, [2.0] * 10)
    with pytest.raises(DivergenceError, match=r"step 11: the training loss spiked to 6.5000, more than 3x"):
        guard.check(11, 6.5)


def test_noise_and_the_fast_early_fall_pass():
    guard = DivergenceGuard(GuardSection(spike_factor=3.0, window=5, warmup_steps=5))
    feed(guard, [9.0, 7.0, 5.0, 4.0, 3.0, 2.9, 3.1, 5.5, 3.0, 2.8])  # 5.5 < 3 x ~3.3
    assert guard.moving_average == pytest.approx(sum([2.9, 3.1, 5.5, 3.0, 2.8]) / 5)


def test_a_near_zero_loss_tripling_by_less_than_min_increase_passes():
    guard = DivergenceGuard(GuardSection(spike_factor=3.0, window=5, warmup_steps=5))
    feed(guard, [0.008] * 10 + [0.027])  # the tiny SFT's late noise: 3.4x, but 0.019 nats
    strict = DivergenceGuard(GuardSection(spike_factor=3.0, window=5, warmup_steps=5, min_increase=0.01))
    feed(strict, [0.008] * 10)
    with pytest.raises(DivergenceError, match=r"step 11: the training loss spiked to 0.0270"):
        strict.check(11, 0.027)


def test_spikes_are_not_judged_during_warmup():
    guard = DivergenceGuard(GuardSection(spike_factor=2.0, window=2, warmup_steps=4))
    feed(guard, [1.0, 1.0, 5.0])  # a spike at step 3, within the first 4 steps
    assert guard.moving_average == pytest.approx(3.0)  # recorded, not judged: the window holds 1.0 and 5.0


def test_disabled_guard_lets_everything_through():
    guard = DivergenceGuard(GuardSection(enabled=False))
    feed(guard, [2.0] * 10 + [float("nan"), 100.0])
    assert guard.moving_average is None  # a disabled guard neither judges nor records


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"spike_factor": 1.0}, "spike_factor"),
        ({"window": 0}, "window"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"min_increase": -0.1}, "min_increase"),
    ],
)
def test_bad_guard_settings_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=f"guard.{key}"):
        GuardSection(**changes)

"""Divergence guard: a non-finite loss, or a loss far above its recent moving average, stops training."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from nemotron.config.errors import ConfigError
from nemotron.ranges import require_non_negative_int, require_positive_int
from nemotron.training.errors import TrainingError


@dataclass(frozen=True)
class GuardSection:
    """Divergence guard: stop on a non-finite loss, or a loss `spike_factor` x its moving average and at least
    `min_increase` above it (near zero a loss triples on noise: 0.008 -> 0.027 late in the tiny SFT)."""

    enabled: bool = True
    spike_factor: float = 3.0
    min_increase: float = 0.1  # nats per token over the moving average, at least, for a spike
    window: int = 20  # steps in the moving average
    warmup_steps: int = 20  # steps before spikes are judged (the first steps fall fast)

    def __post_init__(self) -> None:
        if not isinstance(self.spike_factor, (int, float)) or self.spike_factor <= 1:
            raise ConfigError(f"guard.spike_factor={self.spike_factor!r} must be a number > 1, e.g. 3.0")
        if (
            not isinstance(self.min_increase, (int, float))
            or isinstance(self.min_increase, bool)
            or self.min_increase < 0
        ):
            raise ConfigError(f"guard.min_increase={self.min_increase!r} must be a number >= 0, e.g. 0.1")
        require_positive_int("guard.window", self.window, ConfigError)
        require_non_negative_int("guard.warmup_steps", self.warmup_steps, ConfigError)


class DivergenceError(TrainingError):
    """Training diverged; the message names the step, the loss and what to try."""


class DivergenceGuard:
    """Watches the training loss step by step; `check` raises DivergenceError when it diverges."""

    def __init__(self, cfg: GuardSection) -> None:
        self.cfg = cfg
        self._recent: deque[float] = deque(maxlen=cfg.window)
        self._seen = 0

    @property
    def moving_average(self) -> float | None:
        return sum(self._recent) / len(self._recent) if self._recent else None

    def check(self, step: int, loss: float) -> None:
        """Record the loss of `step` (1-based) or raise when it is non-finite or a spike."""
        if not self.cfg.enabled:
            return
        hint = (
            "training stops here so the last good checkpoint stays the newest; lower lr, raise warmup, "
            "check the data, or resume with guard.enabled=false to go on anyway"
        )
        if not math.isfinite(loss):
            raise DivergenceError(f"step {step}: the training loss is {loss} (not finite); {hint}")
        average = self.moving_average
        judged = self._seen >= self.cfg.warmup_steps and len(self._recent) == self._recent.maxlen
        if (
            judged
            and average is not None
            and loss > self.cfg.spike_factor * average
            and loss - average >= self.cfg.min_increase
        ):
            raise DivergenceError(
                f"step {step}: the training loss spiked to {loss:.4f}, more than {self.cfg.spike_factor:g}x its "
                f"moving average {average:.4f} over the last {len(self._recent)} steps (guard.spike_factor, "
                f"guard.min_increase); {hint}"
            )
        self._recent.append(loss)
        self._seen += 1

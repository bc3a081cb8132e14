"""Learning-rate schedules (cosine, warmup-stable-decay, constant) and a resumable scheduler."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from nemotron.config.errors import ConfigError
from nemotron.ranges import is_int, is_number

ScheduleKind = Literal["cosine", "wsd", "constant"]
DecayStyle = Literal["linear", "cosine", "exponential", "minus_sqrt"]
_KINDS = ("cosine", "wsd", "constant")
_DECAY_STYLES = ("linear", "cosine", "exponential", "minus_sqrt")
_SQRT_ALIASES = ("1-sqrt", "1_sqrt", "sqrt", "one_minus_sqrt", "minus-sqrt")


class LRScheduleError(ConfigError):
    """An lr-schedule setting is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class LRScheduleConfig:
    """How the learning rate moves over training (steps are optimizer steps, 0-based).

    kind:
      * ``cosine``: linear warmup to ``lr``, then half-cosine decay reaching ``min_lr`` at step
        ``train_iters`` (the step after the last one trained).
      * ``wsd``: warmup-stable-decay (MiniCPM, Hu et al. 2024; megatron-core ``lr_decay_style: WSD``):
        linear warmup, flat at ``lr``, then decay to ``min_lr`` over the last ``decay_fraction`` of
        training, shaped by ``decay_style``.
      * ``constant``: linear warmup, then ``lr`` for the rest of training (``min_lr`` unused).

    Warmup: set ``warmup_iters`` or ``warmup_fraction`` (of ``train_iters``), not both; neither
    means no warmup. Step ``s < W`` gets ``lr * (s + 1) / W``, so the first update is never
    wasted on a zero learning rate and step ``W - 1`` is already at ``lr``.

    decay_style (WSD only) uses megatron-core's names and formulas, with ``r`` the fraction of the
    decay phase done and ``lr_t = min_lr + c(r) * (lr - min_lr)``:
      * ``minus_sqrt`` (default): ``c = 1 - sqrt(r)``, the "1-sqrt" cooldown that Hagele et al.
        (2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations") found
        to match or beat cosine; megatron-core calls it ``lr_wsd_decay_style: minus_sqrt``.
      * ``exponential``: ``c = 2 * 0.5**r - 1``, megatron-core's normalised form of MiniCPM's
        ``0.5 ** (t / T)`` decay (it reaches ``min_lr`` exactly at the end).
      * ``linear``: ``c = 1 - r``; ``cosine``: ``c = (1 + cos(pi * r)) / 2``.

    lr_scaling: ``"sqrt"`` multiplies ``lr`` and ``min_lr`` by
    ``sqrt(global_batch_size / reference_global_batch_size)`` (the square-root rule for Adam,
    Malladi et al. 2022), so a recipe tuned at one batch size keeps working at another;
    ``None`` uses ``lr`` as written.
    """

    lr: float
    kind: ScheduleKind = "cosine"
    min_lr: float = 0.0
    warmup_iters: int | None = None
    warmup_fraction: float | None = None
    decay_fraction: float = 0.2
    decay_style: DecayStyle = "minus_sqrt"
    lr_scaling: Literal["sqrt"] | None = None
    reference_global_batch_size: int | None = None

    def __post_init__(self) -> None:
        _check_fields(self)


def _check_fields(cfg: LRScheduleConfig) -> None:
    """Raise LRScheduleError for settings that are wrong whatever the training length."""
    if cfg.kind not in _KINDS:
        raise LRScheduleError(f"lr schedule: kind={cfg.kind!r} is unknown; use one of {', '.join(_KINDS)}.")
    if not (is_number(cfg.lr) and cfg.lr > 0):
        raise LRScheduleError(f"lr schedule: lr={cfg.lr!r} must be a positive number, e.g. lr: 3.0e-4.")
    if not (is_number(cfg.min_lr) and cfg.min_lr >= 0):
        raise LRScheduleError(
            f"lr schedule: min_lr={cfg.min_lr!r} must be a number >= 0, e.g. min_lr: {cfg.lr / 10:g}."
        )
    if cfg.min_lr > cfg.lr:
        raise LRScheduleError(
            f"lr schedule: min_lr={cfg.min_lr:g} is above lr={cfg.lr:g}; set min_lr <= lr "
            f"(commonly a tenth or a hundredth of lr, e.g. min_lr: {cfg.lr / 10:g})."
        )
    _check_phases(cfg)
    if cfg.lr_scaling not in (None, "sqrt"):
        raise LRScheduleError(f"lr schedule: lr_scaling={cfg.lr_scaling!r} is unknown; use null or 'sqrt'.")
    reference = cfg.reference_global_batch_size
    if cfg.lr_scaling == "sqrt" and not (is_int(reference) and reference > 0):
        raise LRScheduleError(
            "lr schedule: lr_scaling=sqrt needs reference_global_batch_size (a positive integer: the "
            f"global batch size lr was tuned at), got {reference!r}."
        )


def _check_phases(cfg: LRScheduleConfig) -> None:
    """Raise LRScheduleError for bad warmup and WSD decay settings."""
    if cfg.warmup_iters is not None and cfg.warmup_fraction is not None:
        raise LRScheduleError(
            f"lr schedule: both warmup_iters={cfg.warmup_iters} and warmup_fraction={cfg.warmup_fraction} "
            "are set; keep one and set the other to null."
        )
    if cfg.warmup_iters is not None and not (is_int(cfg.warmup_iters) and cfg.warmup_iters >= 0):
        raise LRScheduleError(f"lr schedule: warmup_iters={cfg.warmup_iters!r} must be an integer >= 0.")
    fraction = cfg.warmup_fraction
    if fraction is not None and not (is_number(fraction) and 0.0 <= fraction < 1.0):
        raise LRScheduleError(
            f"lr schedule: warmup_fraction={fraction!r} must be in [0, 1), e.g. 0.01 for 1% of training."
        )
    if cfg.kind != "wsd":
        return
    if not (is_number(cfg.decay_fraction) and 0.0 < cfg.decay_fraction <= 1.0):
        raise LRScheduleError(
            f"lr schedule: decay_fraction={cfg.decay_fraction!r} must be in (0, 1] for kind=wsd, "
            "e.g. 0.2 to decay over the last 20% of training."
        )
    if cfg.decay_style not in _DECAY_STYLES:
        hint = " ('1-sqrt' is spelled minus_sqrt)" if str(cfg.decay_style) in _SQRT_ALIASES else ""
        raise LRScheduleError(
            f"lr schedule: decay_style={cfg.decay_style!r} is unknown{hint}; use one of {', '.join(_DECAY_STYLES)}."
        )


def _round_half_up(value: float) -> int:
    """Nearest integer, halves rounding up (Python's round() would send 2.5 to 2)."""
    return math.floor(value + 0.5)


def warmup_iters_for(cfg: LRScheduleConfig, train_iters: int) -> int:
    """The number of warmup steps for a run of ``train_iters`` optimizer steps."""
    if cfg.warmup_iters is not None:
        return cfg.warmup_iters
    if cfg.warmup_fraction is not None:
        return _round_half_up(cfg.warmup_fraction * train_iters)
    return 0


def decay_iters_for(cfg: LRScheduleConfig, train_iters: int) -> int:
    """The number of WSD decay steps (at least 1); 0 for the other kinds."""
    if cfg.kind != "wsd":
        return 0
    return max(1, _round_half_up(cfg.decay_fraction * train_iters))


def validate_schedule(cfg: LRScheduleConfig, train_iters: int) -> None:
    """Raise LRScheduleError when the schedule does not fit in ``train_iters`` steps."""
    if not (is_int(train_iters) and train_iters > 0):
        raise LRScheduleError(
            f"lr schedule: train iterations must be a positive integer, got {train_iters!r}; "
            "check the budget (train_iters, total_tokens or tokens_per_parameter)."
        )
    warmup = warmup_iters_for(cfg, train_iters)
    if warmup >= train_iters:
        raise LRScheduleError(
            f"lr schedule: warmup ({warmup} iterations) must be shorter than training ({train_iters} "
            "iterations); lower warmup_iters or warmup_fraction, or train longer."
        )
    decay = decay_iters_for(cfg, train_iters)
    if warmup + decay > train_iters:
        raise LRScheduleError(
            f"lr schedule: warmup ({warmup} iterations) plus the WSD decay ({decay} iterations, "
            f"decay_fraction={cfg.decay_fraction}) exceed training ({train_iters} iterations); "
            "lower warmup_iters/warmup_fraction or decay_fraction."
        )


def lr_scale_factor(cfg: LRScheduleConfig, global_batch_size: int | None) -> float:
    """The factor lr and min_lr are multiplied by for this global batch size (1.0 without scaling)."""
    if cfg.lr_scaling is None:
        return 1.0
    if not (is_int(global_batch_size) and global_batch_size > 0):
        raise LRScheduleError(
            f"lr schedule: lr_scaling=sqrt needs the run's global_batch_size (a positive integer), "
            f"got {global_batch_size!r}; set global_batch_size or lr_scaling: null."
        )
    assert cfg.reference_global_batch_size is not None  # checked in __post_init__
    return math.sqrt(global_batch_size / cfg.reference_global_batch_size)


def scaled_lr(cfg: LRScheduleConfig, global_batch_size: int | None) -> float:
    """The peak learning rate actually used at ``global_batch_size`` (``cfg.lr`` without scaling)."""
    return cfg.lr * lr_scale_factor(cfg, global_batch_size)


def _wsd_coefficient(style: str, progress: float) -> float:
    """The fraction of (lr - min_lr) left after ``progress`` (0..1) of the WSD decay phase."""
    if style == "linear":
        return 1.0 - progress
    if style == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if style == "exponential":
        return 2.0 * 0.5**progress - 1.0
    return 1.0 - math.sqrt(progress)  # minus_sqrt


def _unscaled_lr(step: int, train_iters: int, cfg: LRScheduleConfig) -> float:
    """The learning rate at ``step`` before batch-size scaling."""
    warmup = warmup_iters_for(cfg, train_iters)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.kind == "constant":
        return cfg.lr
    step = min(step, train_iters)
    if cfg.kind == "cosine":
        progress = (step - warmup) / (train_iters - warmup)
        return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
    decay = decay_iters_for(cfg, train_iters)
    decay_start = train_iters - decay
    if step < decay_start:
        return cfg.lr
    progress = (step - decay_start) / decay
    return cfg.min_lr + _wsd_coefficient(cfg.decay_style, progress) * (cfg.lr - cfg.min_lr)


def lr_at(step: int, train_iters: int, cfg: LRScheduleConfig, global_batch_size: int | None = None) -> float:
    """The learning rate for 0-based optimizer step ``step`` of a ``train_iters``-step run.

    Steps past ``train_iters`` stay at the final value. ``global_batch_size`` is needed only
    with ``lr_scaling: sqrt``.
    """
    if not (is_int(step) and step >= 0):
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    validate_schedule(cfg, train_iters)
    return _unscaled_lr(step, train_iters, cfg) * lr_scale_factor(cfg, global_batch_size)


class LRScheduler:
    """Sets ``param_group["lr"]`` on a torch optimizer from an LRScheduleConfig, step by step.

    On construction the optimizer gets the learning rate of step ``start_step`` (0 for a fresh
    run). Call ``step()`` after each ``optimizer.step()`` to move to the next step. The state is
    only the step counter: the config passed in is the source of truth, so a resumed run with an
    edited schedule follows the new schedule from the restored step.
    """

    def __init__(
        self,
        optimizer: Any,
        cfg: LRScheduleConfig,
        train_iters: int,
        *,
        global_batch_size: int | None = None,
        start_step: int = 0,
    ) -> None:
        validate_schedule(cfg, train_iters)
        self._scale = lr_scale_factor(cfg, global_batch_size)
        self.optimizer = optimizer
        self.cfg = cfg
        self.train_iters = train_iters
        self._step = 0
        self._set_step(start_step)

    @property
    def current_step(self) -> int:
        """The 0-based optimizer step whose learning rate is currently set."""
        return self._step

    @property
    def current_lr(self) -> float:
        """The learning rate currently set on every param group."""
        return _unscaled_lr(self._step, self.train_iters, self.cfg) * self._scale

    def step(self) -> float:
        """Advance to the next optimizer step, set its learning rate and return it."""
        self._set_step(self._step + 1)
        return self.current_lr

    def state_dict(self) -> dict[str, int]:
        """The state to store in a checkpoint."""
        return {"step": self._step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step from ``state_dict()`` output and set that step's learning rate."""
        step = state.get("step") if isinstance(state, dict) else None
        if not (is_int(step) and step >= 0):
            raise ValueError(
                f"LRScheduler state must be a dict with an integer 'step' >= 0 (from state_dict()), got {state!r}"
            )
        self._set_step(step)

    def _set_step(self, step: int) -> None:
        if not (is_int(step) and step >= 0):
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        self._step = step
        lr = self.current_lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

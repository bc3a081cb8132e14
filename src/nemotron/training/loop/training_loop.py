"""The training loop: optimizer steps, LR schedule, interval logging, evaluation, checkpoints, stop requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nemotron.training.engine.engines import Engine, EvalResult
from nemotron.training.engine.objective import Batch
from nemotron.training.loop.divergence import DivergenceGuard
from nemotron.training.loop.metrics import MetricsLogger
from nemotron.training.optim.lr_schedules import LRScheduler


@dataclass
class TrainState:
    """Where training stands after `iteration` optimizer steps; saved in every checkpoint."""

    iteration: int = 0
    consumed_samples: int = 0  # by all data-parallel ranks together: the data position
    tokens_seen: int = 0  # loss tokens trained on
    last_loss: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "consumed_samples": self.consumed_samples,
            "tokens_seen": self.tokens_seen,
            "last_loss": self.last_loss,
            "last_eval": dict(self.last_eval),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(
            iteration=int(data["iteration"]),
            consumed_samples=int(data["consumed_samples"]),
            tokens_seen=int(data["tokens_seen"]),
            last_loss=data.get("last_loss"),
            last_eval=dict(data.get("last_eval") or {}),
        )


@dataclass(frozen=True)
class LoopSettings:
    """The loop's knobs, from the run config and the resolved budget."""

    train_iters: int
    global_batch_size: int
    micro_batches_per_step: int
    log_interval: int
    eval_interval: int | None
    eval_iters: int
    save_interval: int | None


@dataclass(frozen=True)
class LoopOutcome:
    """How the loop ended: finished the budget, or stopped early on request (checkpoint saved)."""

    state: TrainState
    finished: bool
    stop_reason: str | None = None
    saved_at: int | None = None  # iteration of the last checkpoint this loop saved


@dataclass
class _Interval:
    """Sums over the steps since the last log line."""

    steps: int = 0
    loss_sum: float = 0.0
    tokens: int = 0
    grad_norm: float = 0.0
    skipped: int = 0
    extra: dict[str, float] = field(default_factory=dict)  # sums of the stage's own per-step metrics
    started: float = field(default_factory=time.perf_counter)

    def add_extra(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.extra[key] = self.extra.get(key, 0.0) + value


class TrainingLoop:
    """Runs optimizer steps until the budget is spent or a stop is requested.

    `train_batches` yields this rank's micro-batches from the saved data position on;
    `valid_batches()` returns a fresh iterator over the same validation batches each time (None:
    no validation split); `save(state)` writes a checkpoint (collective); `stop_requested()`
    is checked after every step and must agree on all ranks. Optional, for stages with metrics of
    their own: `step_metrics()` after each step (e.g. RL's rewards of the step's rollouts; averaged
    over the log interval with the objective's own reports) and `evaluate_metrics()` at each
    evaluation (collective; e.g. RL's held-out reward).
    """

    def __init__(
        self,
        engine: Engine,
        scheduler: LRScheduler,
        settings: LoopSettings,
        logger: MetricsLogger,
        guard: DivergenceGuard,
        *,
        train_batches: Iterator[Batch],
        valid_batches: Callable[[], Iterator[Batch]] | None,
        save: Callable[[TrainState], None],
        stop_requested: Callable[[], str | None],
        throughput: Callable[[float], dict[str, float]] | None = None,
        step_metrics: Callable[[], dict[str, float]] | None = None,
        evaluate_metrics: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.settings = settings
        self.logger = logger
        self.guard = guard
        self.train_batches = train_batches
        self.valid_batches = valid_batches
        self.save = save
        self.stop_requested = stop_requested
        self.throughput = throughput or (lambda tokens_per_second: {})
        self.step_metrics = step_metrics
        self.evaluate_metrics = evaluate_metrics

    def evaluate(self, state: TrainState) -> EvalResult | None:
        if self.evaluate_metrics is not None:
            metrics = self.evaluate_metrics()
            state.last_eval.update(metrics)
            self.logger.evaluation_metrics(state.iteration, "validation", metrics)
        if self.valid_batches is None:
            return None
        batches = self.valid_batches()
        results = [
            self.engine.eval_step(batches, self.settings.micro_batches_per_step)
            for _ in range(self.settings.eval_iters)
        ]
        tokens = sum(r.tokens for r in results)
        loss = sum(r.loss * r.tokens for r in results) / tokens if tokens else float("nan")
        result = EvalResult(loss=loss, tokens=tokens)
        state.last_eval.update({"loss": result.loss, "perplexity": result.perplexity})
        self.logger.evaluation(state.iteration, "validation", result.loss, result.perplexity)
        return result

    def run(self, state: TrainState) -> LoopOutcome:
        settings = self.settings
        if state.iteration == 0:  # the starting point the validation curve is judged against
            self.evaluate(state)
        interval = _Interval()
        saved_at = None
        while state.iteration < settings.train_iters:
            lr = self.scheduler.current_lr
            result = self.engine.train_step(self.train_batches, settings.micro_batches_per_step)
            self.scheduler.step()
            state.iteration += 1
            state.consumed_samples += settings.global_batch_size
            state.tokens_seen += result.tokens
            state.last_loss = result.loss
            self.guard.check(state.iteration, result.loss)
            interval.steps += 1
            interval.loss_sum += result.loss
            interval.tokens += result.tokens
            interval.grad_norm += result.grad_norm
            interval.skipped += int(result.skipped)
            interval.add_extra(result.metrics)
            if self.step_metrics is not None:
                interval.add_extra(self.step_metrics())
            last = state.iteration == settings.train_iters
            if state.iteration % settings.log_interval == 0 or last:
                self._log(state.iteration, lr, interval)
                interval = _Interval()
            if settings.eval_interval and state.iteration % settings.eval_interval == 0 and not last:
                self.evaluate(state)
            if settings.save_interval and state.iteration % settings.save_interval == 0 and not last:
                self.save(state)
                saved_at = state.iteration
            reason = self.stop_requested()
            if reason and not last:
                self.logger.say(f"stop requested ({reason}) after step {state.iteration}: saving a checkpoint")
                if saved_at != state.iteration:
                    self.save(state)
                return LoopOutcome(state, finished=False, stop_reason=reason, saved_at=state.iteration)
        if state.iteration:
            self.evaluate(state)
        return LoopOutcome(state, finished=True, saved_at=saved_at)

    def _log(self, step: int, lr: float, interval: _Interval) -> None:
        seconds = time.perf_counter() - interval.started
        tokens_per_second = interval.tokens / seconds if seconds > 0 else 0.0
        metrics = {
            "loss": interval.loss_sum / interval.steps,
            "lr": lr,
            "grad_norm": interval.grad_norm / interval.steps,
            "tokens_per_second": tokens_per_second,
            "step_seconds": seconds / interval.steps,
            **self.throughput(tokens_per_second),
        }
        metrics.update({key: total / interval.steps for key, total in interval.extra.items()})
        if interval.skipped:
            metrics["skipped"] = interval.skipped
        self.logger.train(step, metrics)

"""TrainingLoop with a real CpuEngine: step counting, intervals, evaluation, checkpoint calls, stop requests, guard."""

from __future__ import annotations

import pytest
import torch

from nemotron.training.datasets.position import MicroBatchIterator
from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
from nemotron.training.engine.engines import build_engine
from nemotron.training.engine.objective import NextTokenObjective
from nemotron.training.loop.divergence import DivergenceError, DivergenceGuard
from nemotron.training.loop.metrics import MetricsLogger
from nemotron.training.loop.training_loop import LoopSettings, TrainingLoop, TrainState
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.optim.lr_schedules import LRScheduleConfig, LRScheduler
from nemotron.training.optim.optimizer import OptimizerConfig
from nemotron.training.run.config import GuardSection

MODEL = ModelConfig(
    num_layers=1, hidden_size=32, num_attention_heads=2, vocab_size=256, seq_length=8, make_vocab_size_divisible_by=128
)
GLOBAL, MICRO = 4, 2


class Samples:
    """A GPTDataset-shaped dataset of random token windows."""

    def __init__(self, count: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 256, (count, MODEL.seq_length + 1), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        row = self.ids[index]
        return {
            "tokens": row[:-1],
            "labels": row[1:],
            "loss_mask": torch.ones(MODEL.seq_length),
            "position_ids": torch.arange(MODEL.seq_length),
        }


@pytest.fixture
def make_loop(tmp_path):
    made = []

    def make(total: int, *, save_interval=None, eval_interval=None, stop_after: int | None = None, guard=None):
        context = init_distributed(ParallelConfig(), seed=3)
        engine = build_engine(MODEL, ParallelConfig(), OptimizerConfig(lr=1e-3), context, MICRO, NextTokenObjective())
        scheduler = LRScheduler(engine.optimizer, LRScheduleConfig(lr=1e-3, kind="constant"), total)
        logger = MetricsLogger(
            is_main=True,
            tensorboard_dir=tmp_path / "tb",
            train_iters=total,
            progress_bar=True,
            use_wandb=False,
            run_name="t",
            config={},
        )
        made.append(logger)
        saves: list[int] = []
        state_holder: list[TrainState] = []

        def stop():
            return "test stop" if stop_after is not None and state_holder[0].iteration >= stop_after else None

        loop = TrainingLoop(
            engine,
            scheduler,
            LoopSettings(
                total,
                GLOBAL,
                GLOBAL // MICRO,
                log_interval=2,
                eval_interval=eval_interval,
                eval_iters=2,
                save_interval=save_interval,
            ),
            logger,
            guard or DivergenceGuard(GuardSection()),
            train_batches=MicroBatchIterator(Samples(200), MICRO, 0, 1, 0, global_batch_size=GLOBAL),
            valid_batches=lambda: MicroBatchIterator(Samples(16, seed=1), MICRO, 0, 1, 0, global_batch_size=GLOBAL),
            save=lambda state: saves.append(state.iteration),
            stop_requested=stop,
        )
        state = TrainState()
        state_holder.append(state)
        return loop, state, saves, scheduler

    yield make
    for logger in made:
        logger.close()
    destroy_distributed()


def test_runs_the_budget_logs_evaluates_and_saves_on_intervals(make_loop, capsys, tmp_path):
    loop, state, saves, scheduler = make_loop(6, save_interval=2, eval_interval=3)
    outcome = loop.run(state)
    out = capsys.readouterr().out
    assert outcome.finished and state.iteration == 6 and scheduler.current_step == 6
    assert state.consumed_samples == 6 * GLOBAL and state.tokens_seen == 6 * GLOBAL * MODEL.seq_length
    assert saves == [2, 4]  # the final checkpoint is the caller's (it also publishes it)
    assert [line.split(",")[0] for line in out.splitlines() if line.startswith("progress:")] == [
        "progress: 2/6 steps",
        "progress: 4/6 steps",
        "progress: 6/6 steps",
    ]
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("validation")] == [
        "validation at step 0",
        "validation at step 3",
        "validation at step 6",
    ]
    assert "loss" in state.last_eval and list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_a_stop_request_saves_once_and_returns_unfinished(make_loop):
    loop, state, saves, _ = make_loop(10, save_interval=2, stop_after=3)
    outcome = loop.run(state)
    assert not outcome.finished and outcome.stop_reason == "test stop"
    assert state.iteration == 3 and saves == [2, 3] and outcome.saved_at == 3


def test_a_stop_request_right_after_an_interval_save_does_not_save_twice(make_loop):
    loop, state, saves, _ = make_loop(10, save_interval=2, stop_after=2)
    loop.run(state)
    assert saves == [2]


def test_a_nan_loss_stops_training_without_saving(make_loop):
    loop, state, saves, _ = make_loop(10, save_interval=1)
    with torch.no_grad():
        loop.engine.unwrapped_model().decoder.final_layernorm.weight.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="step 1: the training loss is nan"):
        loop.run(state)
    assert saves == []

"""A training stage that is not pretraining, built only from the shared runtime: the proof that a new stage is small.

Run as `python toy_stage.py ARTIFACTS_ROOT TRAIN_ITERS OUT_JSON`: it trains a tiny GPT on synthetic
"copy the first half" sequences with a loss on the second half only (its own Objective and data
factory, no pretrain-data artifact), saves every 2 steps, resumes from the run folder when re-run,
and writes its per-step losses, the state it started from and whether anything of
`nemotron.training.pretrain` was imported.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from nemotron.artifacts import FileRegistry
from nemotron.training.engine.objective import Batch, LossOutput, masked_token_loss
from nemotron.training.loop.metrics import MetricsLogger
from nemotron.training.model.config import ModelConfig
from nemotron.training.optim.lr_schedules import LRScheduleConfig
from nemotron.training.optim.optimizer import OptimizerConfig
from nemotron.training.run.config import (
    CheckpointSection,
    LoggingSection,
    SampleSection,
    TrainingRunConfig,
    TrainSection,
)
from nemotron.training.run.session import DataRequest, RunIdentity, StageData, run_training

SEQ = 16
VOCAB = 64


@dataclass(frozen=True, kw_only=True)
class ToyConfig(TrainingRunConfig):
    """The shared sections plus one option of this stage."""

    half: int = SEQ // 2


class SecondHalfObjective:
    """Next-token loss counted only on the second half of each sequence (a masked-loss stage, like SFT)."""

    def forward(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])

    def loss(self, batch: Batch, output: torch.Tensor) -> LossOutput:
        return masked_token_loss(batch["loss_mask"], output)


def _sample(index: int, half: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(index)
    first = torch.randint(1, VOCAB, (half,), generator=generator)
    sequence = torch.cat([first, first, torch.zeros(1, dtype=torch.long)])[: SEQ + 1]
    mask = torch.zeros(SEQ)
    mask[half - 1 :] = 1.0
    return {"tokens": sequence[:-1], "labels": sequence[1:], "loss_mask": mask, "position_ids": torch.arange(SEQ)}


def toy_data(cfg: ToyConfig):
    """A data factory: micro-batches of sample indices from the consumed position on (one rank)."""

    def batches(start: int) -> Iterator[Batch]:
        index = start
        while True:
            samples = [_sample(index + i, cfg.half) for i in range(cfg.train.micro_batch_size)]
            index += cfg.train.micro_batch_size
            yield {key: torch.stack([s[key] for s in samples]) for key in samples[0]}

    def build(request: DataRequest) -> StageData:
        return StageData(train_batches=batches, valid_batches=lambda: batches(10**6), ref=None, tokenizer=None)

    return build


def main(root: Path, train_iters: int, out: Path) -> None:
    cfg = ToyConfig(
        run_name="toy",
        model=ModelConfig(num_layers=2, hidden_size=64, num_attention_heads=4, vocab_size=VOCAB, seq_length=SEQ),
        train=TrainSection(
            global_batch_size=8,
            micro_batch_size=4,
            train_iters=train_iters,
            log_interval=1,
            eval_interval=None,
            eval_iters=1,
        ),
        lr=LRScheduleConfig(lr=3e-3, kind="constant"),
        optimizer=OptimizerConfig(lr=3e-3),
        checkpoint=CheckpointSection(save_interval=2),
        logging=LoggingSection(progress_bar=False, wandb=False),
        sample=SampleSection(tokens=0),
    )
    losses: dict[int, float] = {}
    original = MetricsLogger.train

    def record(self: MetricsLogger, step: int, metrics: dict[str, float]) -> None:
        losses[step] = metrics["loss"]
        original(self, step, metrics)

    MetricsLogger.train = record  # type: ignore[method-assign]  # read the losses the loop logs
    result = run_training(
        cfg, RunIdentity("toy", None, "0" * 64), FileRegistry(root), toy_data(cfg), SecondHalfObjective()
    )
    out.write_text(
        json.dumps(
            {
                "losses": losses,
                "finished": result.finished,
                "iteration": result.state.iteration,
                "checkpoint": str(result.checkpoint.path) if result.checkpoint else None,
                "pretrain_imported": sorted(
                    name for name in sys.modules if name.startswith("nemotron.training.pretrain")
                ),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))

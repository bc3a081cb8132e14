"""Training metrics to the log (a `progress:` line the CLI draws as a bar), TensorBoard and W&B."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nemotron.artifacts.mirrors import WANDB_ENTITY_VAR, WANDB_PROJECT_VAR


def format_metrics(metrics: dict[str, float]) -> str:
    """`loss 6.1234 | lr 3.00e-04 | grad norm 1.23 | 3,210 tok/s | 0.64 s/step` (known keys first)."""
    parts = []
    formats = (
        ("loss", "loss {:.4f}"),
        ("lr", "lr {:.2e}"),
        ("grad_norm", "grad norm {:.3f}"),
        ("tokens_per_second", "{:,.0f} tok/s"),
        ("step_seconds", "{:.2f} s/step"),
        ("mfu", "MFU {:.1%}"),
        ("skipped", "{:.0f} skipped"),
    )
    for key, template in formats:
        if key in metrics and metrics[key] is not None:
            parts.append(template.format(metrics[key]))
    known = {key for key, _ in formats}
    parts += [f"{key} {value:.4g}" for key, value in metrics.items() if key not in known and value is not None]
    return " | ".join(parts)


class MetricsLogger:
    """Writes metrics on global rank 0; other ranks log nothing.

    TensorBoard event files always go to `tensorboard_dir`; W&B is used when the launcher set
    NEMOTRON_WANDB_PROJECT (env.toml [wandb]) and `use_wandb` is on.
    """

    def __init__(
        self,
        *,
        is_main: bool,
        tensorboard_dir: Path,
        train_iters: int,
        progress_bar: bool,
        use_wandb: bool,
        run_name: str,
        config: dict[str, Any],
    ) -> None:
        self.is_main = is_main
        self.train_iters = train_iters
        self.progress_bar = progress_bar
        self._tensorboard = None
        self._wandb = None
        if not is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        tensorboard_dir.mkdir(parents=True, exist_ok=True)
        self._tensorboard = SummaryWriter(log_dir=str(tensorboard_dir))
        project = os.environ.get(WANDB_PROJECT_VAR)
        if use_wandb and project:
            import wandb

            self._wandb = wandb.init(
                project=project,
                entity=os.environ.get(WANDB_ENTITY_VAR) or None,
                name=os.environ.get("NEMOTRON_JOB_NAME") or run_name,
                group=run_name,
                config=config,
                job_type="train",
                resume="allow",
            )

    def say(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)

    def train(self, step: int, metrics: dict[str, float]) -> None:
        """One log interval of training metrics at optimizer step `step` (1-based)."""
        if not self.is_main:
            return
        head = (
            f"progress: {step}/{self.train_iters} steps, "
            if self.progress_bar
            else f"step {step}/{self.train_iters} | "
        )
        print(head + format_metrics(metrics), flush=True)
        self._scalars("train", step, metrics)

    def evaluation(self, step: int, split: str, loss: float, perplexity: float) -> None:
        if not self.is_main:
            return
        print(f"{split} at step {step}: loss {loss:.4f} | perplexity {perplexity:.2f}", flush=True)
        self._scalars(split, step, {"loss": loss, "perplexity": perplexity})

    def evaluation_metrics(self, step: int, split: str, metrics: dict[str, float]) -> None:
        """A stage's own evaluation (e.g. RL's held-out reward) at step `step`."""
        if not self.is_main:
            return
        print(f"{split} at step {step}: " + " | ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
        self._scalars(split, step, metrics)

    def _scalars(self, prefix: str, step: int, metrics: dict[str, float]) -> None:
        values = {f"{prefix}/{key}": float(value) for key, value in metrics.items() if value is not None}
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(key, value, step)
            self._tensorboard.flush()
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()

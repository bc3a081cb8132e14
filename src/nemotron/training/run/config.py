"""The config sections every training stage shares: model, parallelism, batch, budget, schedule, checkpoints, logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nemotron.artifacts.names import validate_artifact_name
from nemotron.config.errors import ConfigError
from nemotron.paths import runs_root
from nemotron.ranges import require_positive_int
from nemotron.training.loop.divergence import GuardSection
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.optim.lr_schedules import LRScheduleConfig
from nemotron.training.optim.optimizer import OptimizerConfig


@dataclass(frozen=True)
class TrainSection:
    """Batch sizes, the budget (exactly one of train_iters / total_tokens / tokens_per_parameter) and intervals."""

    global_batch_size: int
    micro_batch_size: int
    train_iters: int | None = None
    total_tokens: int | None = None
    tokens_per_parameter: float | None = None  # 20 = Chinchilla
    seed: int = 1234
    log_interval: int = 10
    eval_interval: int | None = 100  # None: evaluate only at the end
    eval_iters: int = 10  # global batches per evaluation
    num_workers: int = 0  # data-loading worker processes per rank

    def __post_init__(self) -> None:
        for key in ("log_interval", "eval_iters"):
            require_positive_int(f"train.{key}", getattr(self, key), ConfigError)
        if self.eval_interval is not None:
            require_positive_int("train.eval_interval", self.eval_interval, ConfigError)


@dataclass(frozen=True)
class CheckpointSection:
    """Where and how often to save; `dir` None = <artifacts root>/../runs/<run_name>/checkpoints."""

    dir: str | None = None
    save_interval: int | None = None  # None: save only at the end (and on a preemption signal)
    keep_last: int | None = 3  # complete checkpoints kept; None keeps all
    resume: bool = True  # continue from the newest checkpoint in `dir` when there is one
    load: str | None = None  # an explicit iter_XXXXXXX folder to start from (overrides resume)
    publish_intermediate: bool = False  # publish every saved checkpoint as a model artifact, not only the last

    def __post_init__(self) -> None:
        if self.save_interval is not None:
            require_positive_int("checkpoint.save_interval", self.save_interval, ConfigError)
        if self.keep_last is not None:
            require_positive_int("checkpoint.keep_last", self.keep_last, ConfigError)


@dataclass(frozen=True)
class LoggingSection:
    """TensorBoard always (under the run folder); W&B when env.toml has a [wandb] table."""

    progress_bar: bool = True  # drawn on a terminal; plain lines in logs
    wandb: bool = True  # log metrics to W&B when the launcher configured it


@dataclass(frozen=True)
class SampleSection:
    """A short greedy continuation printed at the end of training (0 tokens: none)."""

    prompt: str = "The"
    tokens: int = 32


@dataclass(frozen=True, kw_only=True)
class TrainingRunConfig:
    """The sections every training stage's config has; a stage's schema adds its inputs (`run`) and options."""

    run_name: str  # names the run folder: re-running the same config resumes it
    model: ModelConfig
    train: TrainSection
    lr: LRScheduleConfig
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    guard: GuardSection = field(default_factory=GuardSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    sample: SampleSection = field(default_factory=SampleSection)
    artifact_name: str | None = None  # the model artifact; None = run_name
    tokenizer: str | None = None  # a Hugging Face tokenizer folder; None = the data artifact's tokenizer

    def __post_init__(self) -> None:
        # run_name names the folder runs/<run_name> and, by default, the model artifact; artifact_name a
        # registry folder: both follow the artifact-name rule, checked when the config is loaded (so in
        # --dry-run). An InvalidNameError is a ValueError: the schema reports it at the key, with the override.
        validate_artifact_name(self.run_name, "run_name", example="nano3-pretrain-tiny")
        if self.artifact_name is not None:
            validate_artifact_name(self.artifact_name, "artifact_name", example="nano3-pretrain-tiny")
        if self.model.seq_length < 1:
            raise ConfigError(f"model.seq_length={self.model.seq_length!r} must be a positive integer")

    @property
    def model_artifact_name(self) -> str:
        return self.artifact_name or self.run_name


def run_folder(run_name: str, artifacts_root: Path) -> Path:
    """The folder of run `run_name` (any stage's: checkpoints, caches, reports): `runs/` next to the registry."""
    return runs_root(artifacts_root) / run_name


def run_dir(cfg: TrainingRunConfig, artifacts_root: Path) -> Path:
    """The run's folder (checkpoints, TensorBoard, data index caches): next to the artifact registry."""
    return run_folder(cfg.run_name, artifacts_root)


def checkpoint_dir(cfg: TrainingRunConfig, artifacts_root: Path) -> Path:
    return Path(cfg.checkpoint.dir).expanduser() if cfg.checkpoint.dir else run_dir(cfg, artifacts_root) / "checkpoints"

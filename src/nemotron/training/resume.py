"""Which checkpoint a run starts from, whether it fits the current config, and loading it into the engine."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from nemotron.training.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint_info,
    restore_rng,
    rng_sharded_state,
)
from nemotron.training.engine import Engine
from nemotron.training.loop import TrainState
from nemotron.training.run_config import TrainingRunConfig


def start_checkpoint(cfg: TrainingRunConfig, root: Path) -> CheckpointInfo | None:
    """`checkpoint.load` when set, else the newest checkpoint under `root` when resuming, else None."""
    if cfg.checkpoint.load:
        return read_checkpoint_info(Path(cfg.checkpoint.load).expanduser())
    if not cfg.checkpoint.resume:
        return None
    return latest_checkpoint(root)


def model_architecture(cfg: TrainingRunConfig) -> dict[str, Any]:
    """The model settings a checkpoint must share with the config that loads it."""
    return asdict(cfg.model)


_ARCHITECTURE_FREE = ("precision", "fp8", "attention_dropout", "hidden_dropout", "init_method_std")


def check_compatible(info: CheckpointInfo, cfg: TrainingRunConfig) -> None:
    """Refuse a checkpoint whose model differs from the config's (before any tensor is read)."""
    saved = info.metadata.get("model")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{info.path}: nemotron_checkpoint.json has no 'model' settings; it was not written "
                              "by a nemotron training stage. Point checkpoint.load at a nemotron checkpoint")
    current = model_architecture(cfg)
    differing = sorted(key for key in set(saved) | set(current)
                       if key not in _ARCHITECTURE_FREE and saved.get(key) != current.get(key))
    if differing:
        shown = ", ".join(f"model.{key}: checkpoint {saved.get(key)!r} vs config {current.get(key)!r}"
                          for key in differing)
        raise CheckpointError(
            f"{info.path} was saved with a different model ({shown}); use the config it was trained with, "
            "set checkpoint.resume=false to start fresh, or choose another run_name / checkpoint.dir"
        )


def restore(engine: Engine, info: CheckpointInfo, cfg: TrainingRunConfig) -> tuple[TrainState, dict[str, Any]]:
    """Load weights, optimizer and RNG from `info` into `engine`; the train state and scheduler state."""
    check_compatible(info, cfg)
    try:
        state = TrainState.from_dict(info.metadata["train_state"])
        scheduler_state = dict(info.metadata["scheduler"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{info.path}: nemotron_checkpoint.json lacks the train state ({err}); the file is "
                              "damaged: delete this checkpoint folder to resume from the one before") from err
    request = engine.sharded_state_dict(is_loading=True)
    same_split = _model_split(info.metadata.get("parallelism") or {}) == _model_split(_current_parallelism())
    if same_split:  # RNG states are per tensor/pipeline rank; with another split they are reseeded instead
        request["rng"] = rng_sharded_state()
    loaded = load_checkpoint(info, request)
    engine.load_sharded_state(loaded)
    if same_split:
        restore_rng(loaded["rng"])
    return state, scheduler_state


def _model_split(parallelism: dict[str, Any]) -> tuple[int, int]:
    return int(parallelism.get("tensor", 1)), int(parallelism.get("pipeline", 1))


def _current_parallelism() -> dict[str, int]:
    from megatron.core import parallel_state

    return {"tensor": parallel_state.get_tensor_model_parallel_world_size(),
            "pipeline": parallel_state.get_pipeline_model_parallel_world_size()}

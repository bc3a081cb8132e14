"""Which checkpoint a run starts from, whether it fits the current config, and loading it into the engine."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from nemotron.training.checkpoint.layout import (
    CheckpointError,
    CheckpointInfo,
    latest_checkpoint,
    read_checkpoint_info,
)
from nemotron.training.checkpoint.merged import merged_model
from nemotron.training.checkpoint.rng import restore_rng, rng_sharded_state
from nemotron.training.checkpoint.store import load_checkpoint
from nemotron.training.engine.engines import Engine
from nemotron.training.loop.training_loop import TrainState
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.model.lora import base_part
from nemotron.training.run.config import CheckpointSection


def start_checkpoint(section: CheckpointSection, root: Path) -> CheckpointInfo | None:
    """`checkpoint.load` when set, else the newest checkpoint under `root` when resuming, else None."""
    if section.load:
        return read_checkpoint_info(Path(section.load).expanduser())
    if not section.resume:
        return None
    return latest_checkpoint(root)


def model_architecture(model: ModelConfig) -> dict[str, Any]:
    """The model settings a checkpoint must share with the config that loads it."""
    return asdict(model)


_ARCHITECTURE_FREE = ("precision", "fp8", "attention_dropout", "hidden_dropout", "init_method_std")


def check_compatible(info: CheckpointInfo, model: ModelConfig) -> None:
    """Refuse a checkpoint whose model differs from the config's (before any tensor is read)."""
    saved = info.metadata.get("model")
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"{info.path}: nemotron_checkpoint.json has no 'model' settings; it was not written "
            "by a nemotron training stage. Point checkpoint.load at a nemotron checkpoint"
        )
    current = model_architecture(model)
    differing = sorted(
        key for key in set(saved) | set(current) if key not in _ARCHITECTURE_FREE and saved.get(key) != current.get(key)
    )
    if differing:
        shown = ", ".join(
            f"model.{key}: checkpoint {saved.get(key)!r} vs config {current.get(key)!r}" for key in differing
        )
        raise CheckpointError(
            f"{info.path} was saved with a different model ({shown}); use the config it was trained with, "
            "set checkpoint.resume=false to start fresh, or choose another run_name / checkpoint.dir"
        )


def restore(engine: Engine, info: CheckpointInfo, model: ModelConfig) -> tuple[TrainState, dict[str, Any]]:
    """Load weights, optimizer and RNG from `info` into `engine` (built for `model`); the train and scheduler state."""
    check_compatible(info, model)
    try:
        state = TrainState.from_dict(info.metadata["train_state"])
        scheduler_state = dict(info.metadata["scheduler"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{info.path}: nemotron_checkpoint.json lacks the train state ({err}); the file is "
            "damaged: delete this checkpoint folder to resume from the one before"
        ) from err
    request = engine.sharded_state_dict(is_loading=True)
    same_split = _model_split(info.metadata.get("parallelism") or {}) == _model_split(_current_parallelism())
    if same_split:  # RNG states are per tensor/pipeline rank; with another split they are reseeded instead
        request["rng"] = rng_sharded_state()
    loaded = load_checkpoint(info, request)
    engine.load_sharded_state(loaded)
    if same_split:
        restore_rng(loaded["rng"])
    return state, scheduler_state


def load_weights(engine: Engine, info: CheckpointInfo, model: ModelConfig, parallel: ParallelConfig) -> None:
    """Load only the model weights of `info` into `engine`: a fine-tuning start (fresh optimizer, step 0).

    A checkpoint of LoRA adapters is merged onto its base first, in a model built alike (held briefly).
    """
    check_compatible(info, model)
    if info.metadata.get("peft"):
        merged = merged_model(info, model, parallel, next(engine.unwrapped_model().parameters()).device)
        engine.load_model_weights(base_part(merged.state_dict()))
        del merged
        return
    loaded = load_checkpoint(info, {"model": engine.weights_sharded_state_dict()})
    engine.load_model_weights(loaded["model"])


def _model_split(parallelism: dict[str, Any]) -> tuple[int, int]:
    return int(parallelism.get("tensor", 1)), int(parallelism.get("pipeline", 1))


def _current_parallelism() -> dict[str, int]:
    from megatron.core import parallel_state

    return {
        "tensor": parallel_state.get_tensor_model_parallel_world_size(),
        "pipeline": parallel_state.get_pipeline_model_parallel_world_size(),
    }

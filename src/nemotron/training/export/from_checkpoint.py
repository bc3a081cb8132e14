"""Load a training checkpoint (any parallel layout) into one unsplit model and export it for Hugging Face."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nemotron.artifacts import FileRegistry
from nemotron.config import to_dataclass
from nemotron.training.checkpoint.layout import INFO_FILE, CheckpointError, CheckpointInfo
from nemotron.training.checkpoint.merged import load_merged_weights
from nemotron.training.checkpoint.sources import checkpoint_and_tokenizer
from nemotron.training.model.config import ModelConfig


def unsplit_model_config(info: CheckpointInfo) -> ModelConfig:
    """The checkpoint's model, padded for tensor-parallel size 1 exactly as it was padded when saved."""
    saved = info.metadata.get("model")
    if not saved:
        raise CheckpointError(
            f"{info.path}: nemotron_checkpoint.json has no 'model' settings; not a nemotron checkpoint"
        )
    model = to_dataclass(saved, ModelConfig, source=f"{info.path / INFO_FILE} (model)")
    tensor = int((info.metadata.get("parallelism") or {}).get("tensor", 1))
    return dataclasses.replace(
        model, make_vocab_size_divisible_by=model.make_vocab_size_divisible_by * tensor, precision="fp32"
    )


def tokenizer_folder(info: CheckpointInfo, artifact_tokenizer: Path | None = None) -> Path | None:
    """The tokenizer folder to ship with a checkpoint's model: the artifact's own (an imported model's),
    else the one its training recorded when that is a folder on this machine, else None."""
    if artifact_tokenizer is not None:
        return artifact_tokenizer
    recorded = (info.metadata.get("tokenizer") or {}).get("name_or_path")
    return Path(recorded) if recorded and Path(recorded).is_dir() else None


def export_loaded_hf(
    model: Any,
    model_cfg: ModelConfig,
    info: CheckpointInfo,
    source: str,
    out_dir: Path,
    *,
    tokenizer_dir: Path | None,
    dtype: str = "bfloat16",
    overwrite: bool = False,
) -> Path:
    """Write `model` (the unsplit model of `info`, weights loaded) as a Hugging Face folder; returns out_dir."""
    from nemotron.training.export.hf import export_hf

    metadata = {
        "source": source,
        "checkpoint": str(info.path),
        "step": info.iteration,
        "tokens_seen": (info.metadata.get("train_state") or {}).get("tokens_seen"),
    }
    return export_hf(
        model,
        model_cfg,
        out_dir,
        tokenizer_dir=tokenizer_dir,
        dtype=dtype,
        metadata=metadata,
        eod_id=(info.metadata.get("tokenizer") or {}).get("eod_id"),
        overwrite=overwrite,
    )


def export_checkpoint_hf(
    ref_or_path: str, out_dir: Path, registry: FileRegistry, *, dtype: str = "bfloat16", overwrite: bool = False
) -> Path:
    """Convert a checkpoint to a Hugging Face folder (safetensors, config, tokenizer); returns out_dir.

    The folder is checked first (empty, absent, or with `overwrite` an earlier export), before any
    checkpoint is read.
    """
    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.export.hf import check_exportable, check_out_dir

    check_out_dir(out_dir, overwrite)
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig

    info, source, tokenizer_dir = checkpoint_and_tokenizer(ref_or_path, registry)
    model_cfg = unsplit_model_config(info)
    check_exportable(model_cfg)  # before loading gigabytes
    single = ParallelConfig()
    context = init_distributed(single)
    try:
        model = build_model(model_cfg, single, context.device)
        load_merged_weights(model, info)
        return export_loaded_hf(
            model,
            model_cfg,
            info,
            source,
            out_dir,
            tokenizer_dir=tokenizer_folder(info, tokenizer_dir),
            dtype=dtype,
            overwrite=overwrite,
        )
    finally:
        destroy_distributed()

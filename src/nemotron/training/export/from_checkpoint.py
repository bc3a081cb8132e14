"""Load a training checkpoint (any parallel layout) into one unsplit model and export it for Hugging Face."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nemotron.artifacts import ArtifactKind, FileRegistry
from nemotron.config import to_dataclass
from nemotron.config.errors import ConfigError
from nemotron.training.checkpoint.layout import INFO_FILE, CheckpointError, CheckpointInfo, read_checkpoint_info
from nemotron.training.checkpoint.store import load_checkpoint
from nemotron.training.model.config import ModelConfig


def checkpoint_for(ref_or_path: str, registry: FileRegistry) -> tuple[CheckpointInfo, str]:
    """A checkpoint folder (iter_XXXXXXX) given directly, or the one inside a model-checkpoint artifact."""
    info, source, _ = _checkpoint_and_tokenizer(ref_or_path, registry)
    return info, source


def _checkpoint_and_tokenizer(ref_or_path: str, registry: FileRegistry) -> tuple[CheckpointInfo, str, Path | None]:
    """checkpoint_for, plus the artifact's own tokenizer folder (an imported model's), if it has one."""
    path = Path(ref_or_path).expanduser()
    if path.exists():
        return read_checkpoint_info(path), str(path.resolve()), None
    artifact = registry.resolve(ref_or_path)
    if artifact.kind != ArtifactKind.MODEL_CHECKPOINT:
        raise ConfigError(
            f"{artifact.ref} is a {artifact.kind.value} artifact; export needs a model-checkpoint "
            "artifact (from `nemotron nano3 pretrain`) or a checkpoint folder"
        )
    tokenizer = artifact.file("tokenizer") if "tokenizer" in artifact.files else None
    return read_checkpoint_info(artifact.file("checkpoint")), artifact.ref, tokenizer


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


def export_checkpoint_hf(
    ref_or_path: str, out_dir: Path, registry: FileRegistry, *, dtype: str = "bfloat16", overwrite: bool = False
) -> Path:
    """Convert a checkpoint to a Hugging Face folder (safetensors, config, tokenizer); returns out_dir.

    The folder is checked first (empty, absent, or with `overwrite` an earlier export), before any
    checkpoint is read.
    """
    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.export.hf import check_exportable, check_out_dir, export_hf

    check_out_dir(out_dir, overwrite)
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig

    info, source, tokenizer_dir = _checkpoint_and_tokenizer(ref_or_path, registry)
    model_cfg = unsplit_model_config(info)
    check_exportable(model_cfg)  # before loading gigabytes
    tokenizer = (info.metadata.get("tokenizer") or {}).get("name_or_path")
    if tokenizer_dir is None and tokenizer and Path(tokenizer).is_dir():
        tokenizer_dir = Path(tokenizer)
    single = ParallelConfig()
    context = init_distributed(single)
    try:
        model = build_model(model_cfg, single, context.device)
        loaded = load_checkpoint(info, {"model": model.sharded_state_dict()})
        model.load_state_dict(loaded["model"])
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
    finally:
        destroy_distributed()

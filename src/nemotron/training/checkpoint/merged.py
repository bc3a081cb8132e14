"""A checkpoint's weights in a built model, LoRA adapters (a checkpoint holding only them) merged onto their base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nemotron.training.checkpoint.layout import CheckpointInfo, read_checkpoint_info
from nemotron.training.model.config import ModelConfig, ParallelConfig


def load_merged_weights(model: Any, info: CheckpointInfo) -> None:
    """Load `info`'s weights into `model` (built for this rank's part of the checkpoint's model); LoRA adapters
    are loaded onto their base checkpoint's weights and merged into them (W += alpha / r * B A)."""
    from nemotron.training.checkpoint.store import load_checkpoint
    from nemotron.training.model.lora import LoraSettings, attach_lora, checkpoint_part, load_part, merge_lora

    peft = info.metadata.get("peft")
    if not peft:
        loaded = load_checkpoint(info, {"model": model.sharded_state_dict()})
        model.load_state_dict(loaded["model"])
        return
    base = read_checkpoint_info(Path(peft["base_checkpoint"]))
    load_merged_weights(model, base)
    settings = LoraSettings(peft["rank"], peft["alpha"], peft["dropout"], tuple(peft["target_modules"]))
    attach_lora(model, settings)
    loaded = load_checkpoint(info, {"model": checkpoint_part(model.sharded_state_dict())})
    load_part(model, loaded["model"])
    merge_lora(model)


def merged_model(
    info: CheckpointInfo, model_cfg: ModelConfig, parallel: ParallelConfig, device: Any
) -> torch.nn.Module:
    """A new model (this rank's part under `parallel`) holding `info`'s weights, adapters merged; needs
    init_distributed."""
    from nemotron.training.model.build import build_model

    model = build_model(model_cfg, parallel, device)
    load_merged_weights(model, info)
    return model

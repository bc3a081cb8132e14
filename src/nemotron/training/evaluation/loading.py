"""A model to evaluate, built whole in this process with its checkpoint's weights (LoRA adapters merged)."""

from __future__ import annotations

import torch

from nemotron.training.evaluation.inputs import EvalModel
from nemotron.training.export.from_checkpoint import load_merged_weights
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ParallelConfig


def load_model(model: EvalModel, device: torch.device) -> torch.nn.Module:
    """`model`'s GPTModel (tensor/pipeline size 1, fp32) on `device`, in eval mode; needs init_distributed."""
    built = build_model(model.config, ParallelConfig(), device)
    load_merged_weights(built, model.checkpoint)
    return built.eval()

"""A model to evaluate, built whole in this process with its checkpoint's weights (LoRA adapters merged)."""

from __future__ import annotations

import torch

from nemotron.training.checkpoint.merged import merged_model
from nemotron.training.evaluation.inputs import EvalModel
from nemotron.training.model.config import ParallelConfig


def load_model(model: EvalModel, device: torch.device) -> torch.nn.Module:
    """`model`'s GPTModel (tensor/pipeline size 1, fp32) on `device`, in eval mode; needs init_distributed."""
    return merged_model(model.checkpoint, model.config, ParallelConfig(), device).eval()

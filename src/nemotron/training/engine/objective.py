"""What a training stage plugs into the engine: its forward pass and its loss (the `Objective` protocol).

The engine owns the schedule (micro-batches, pipeline stages, data-parallel reduction); an objective
owns what one micro-batch means. Its loss follows megatron-core's per-token contract: a summed loss,
the number of tokens it sums over, and a report whose `LOSS_KEY` entry is `[sum, count]`, so that a
step's loss is a mean over every counted token of the global batch, whatever the accumulation or
data-parallel split.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

LOSS_KEY = "lm loss"

Batch = dict[str, torch.Tensor]
LossOutput = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


class Objective(Protocol):
    """One micro-batch through the model (`forward`), then its loss from the output (`loss`)."""

    def forward(self, model: torch.nn.Module, batch: Batch) -> Any: ...

    def loss(self, batch: Batch, output: Any) -> LossOutput: ...


def masked_token_loss(loss_mask: torch.Tensor, per_token_loss: torch.Tensor) -> LossOutput:
    """Megatron's 3-tuple loss contract: summed loss over unmasked tokens, their count, and both for reporting."""
    mask = loss_mask.reshape(-1).float()
    total = torch.sum(per_token_loss.reshape(-1).float() * mask)
    tokens = mask.sum().to(torch.int)
    return total, tokens, {LOSS_KEY: torch.stack([total.detach().clone(), mask.sum().detach()])}


class NextTokenObjective:
    """Next-token cross-entropy averaged over `loss_mask` tokens: GPT pretraining (and masked SFT)."""

    def forward(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch["tokens"], batch["position_ids"], batch.get("attention_mask"), labels=batch["labels"])

    def loss(self, batch: Batch, output: torch.Tensor) -> LossOutput:
        return masked_token_loss(batch["loss_mask"], output)

"""Packed sequences without attention across documents: a block-diagonal causal mask, or THD with Transformer Engine.

megatron-core's local layers (CPU, GPU without Transformer Engine) accept an explicit attention mask
but not packed THD batches; Transformer Engine takes THD (`PackedSeqParams` with `cu_seqlens`) and
ignores an explicit mask for its causal layers. So the objective builds, per micro-batch, the mask
on the local path and the cumulative document lengths on the TE path. Either way each document sees
only itself, and the loss is the masked per-token loss of `objective.masked_token_loss`.
"""

from __future__ import annotations

from typing import Any

import torch

from nemotron.training.engine.objective import Batch, LossOutput, masked_token_loss


def block_causal_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """[b, 1, s, s] bool, True where attention is forbidden: another document, or a later position."""
    length = document_ids.shape[-1]
    same = document_ids[:, :, None] == document_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=document_ids.device).tril()
    return ~(same & causal)[:, None]


def document_boundaries(document_ids: torch.Tensor) -> torch.Tensor:
    """int32 cumulative lengths of the runs of equal ids over the flattened micro-batch, from 0 to b*s.

    Each row's padding is one run of its own, and rows never join: a run ends at every row's end.
    """
    flat = document_ids.reshape(-1)
    length = document_ids.shape[-1]
    change = torch.ones_like(flat, dtype=torch.bool)
    change[1:] = flat[1:] != flat[:-1]
    change[::length] = True  # a new row starts a new run even when the ids agree
    starts = torch.nonzero(change).reshape(-1)
    end = torch.tensor([flat.numel()], device=flat.device)
    return torch.cat([starts, end]).to(torch.int32)


def thd_params(document_ids: torch.Tensor) -> Any:
    """megatron-core's PackedSeqParams (qkv_format "thd") for the flattened micro-batch."""
    from megatron.core.packed_seq_params import PackedSeqParams

    bounds = document_boundaries(document_ids)
    longest = int((bounds[1:] - bounds[:-1]).max())
    return PackedSeqParams(
        qkv_format="thd",
        cu_seqlens_q=bounds,
        cu_seqlens_kv=bounds,
        max_seqlen_q=longest,
        max_seqlen_kv=longest,
    )


class PackedSequenceObjective:
    """Next-token loss over packed rows: `document_ids` keep documents apart, `loss_mask` picks the targets.

    `thd`: None decides per batch (THD on a CUDA device with Transformer Engine, the mask otherwise).
    """

    def __init__(self, thd: bool | None = None) -> None:
        self.thd = thd

    def _use_thd(self, batch: Batch) -> bool:
        if self.thd is not None:
            return self.thd
        from nemotron.training.model.build import uses_transformer_engine

        return uses_transformer_engine(batch["tokens"].device)

    def forward(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        documents = batch["document_ids"]
        if self._use_thd(batch):
            flat = {key: batch[key].reshape(1, -1) for key in ("tokens", "position_ids", "labels")}
            return model(
                flat["tokens"],
                flat["position_ids"],
                None,
                labels=flat["labels"],
                packed_seq_params=thd_params(documents),
            )
        return model(batch["tokens"], batch["position_ids"], block_causal_mask(documents), labels=batch["labels"])

    def loss(self, batch: Batch, output: torch.Tensor) -> LossOutput:
        return masked_token_loss(batch["loss_mask"], output)

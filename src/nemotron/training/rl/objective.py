"""GRPO's objective for the engine: token log-probs from the training forward pass, then the clipped policy loss.

A micro-batch holds whole sequences (prompt + completion, right-padded): `tokens`, `position_ids`,
`labels` (the next token), `loss_mask` (1 where the label is a completion token), `advantages` [b],
and optionally `old_logprobs` (the policy before this batch's first update; without it the ratio
is 1 and only its gradient counts, as TRL's single-update GRPO), `ref_logprobs` (the frozen starting
model, for the KL term) and `generation_logprobs` (what the sampler saw; only logged, as the
mismatch with the training forward pass). Logits are divided by the sampling temperature and the
vocabulary padding is excluded, so the log-probs are those of the distribution that sampled.
"""

from __future__ import annotations

from typing import Any

import torch

from nemotron.training.engine.objective import LOSS_KEY, Batch, LossOutput


def _report(total: torch.Tensor, count: torch.Tensor | float) -> torch.Tensor:
    return torch.stack([total.detach().double().reshape(()), torch.as_tensor(count, dtype=torch.float64)])


class GrpoObjective:
    """The clipped policy-gradient loss of GRPO under megatron-core's per-token contract (sum, count, reports)."""

    def __init__(
        self,
        *,
        vocab_size: int,
        temperature: float,
        clip_low: float,
        clip_high: float,
        aggregation: str,
        kl_coef: float = 0.0,
    ) -> None:
        self.vocab_size = vocab_size
        self.temperature = temperature
        self.clip_low = clip_low
        self.clip_high = clip_high
        self.aggregation = aggregation
        self.kl_coef = kl_coef

    def forward(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch["tokens"], batch["position_ids"], None)

    def token_logprobs(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-prob of each label, entropy of each position's distribution), both [b, s], tensor-parallel aware."""
        return vocab_parallel_logprobs(logits.float() / self.temperature, labels, self.vocab_size)

    def loss(self, batch: Batch, output: Any) -> LossOutput:
        from nemotron.training.rl.grpo import policy_loss

        logprobs, entropy = self.token_logprobs(output, batch["labels"])
        mask = batch["loss_mask"].float()
        old = batch.get("old_logprobs")
        result = policy_loss(
            logprobs,
            old if old is not None else logprobs.detach(),
            batch["advantages"].float(),
            mask,
            clip_low=self.clip_low,
            clip_high=self.clip_high,
            aggregation=self.aggregation,
            ref_logprobs=batch.get("ref_logprobs"),
            kl_coef=self.kl_coef,
        )
        tokens = mask.sum()
        reports = {
            LOSS_KEY: _report(result.total, result.count),
            "clip_low": result.clip_low_fraction.double(),
            "clip_high": result.clip_high_fraction.double(),
            "kl": result.kl.double(),
            "entropy": _report((entropy.detach() * mask).sum(), tokens),
        }
        generated = batch.get("generation_logprobs")
        if generated is not None:
            reports["logprob_mismatch"] = _report(((logprobs.detach() - generated).abs() * mask).sum(), tokens)
        count = torch.as_tensor(result.count, dtype=torch.int)
        return result.total, count, reports


def vocab_parallel_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of `labels` and entropies from logits [b, s, v / tp] split over the tensor-parallel ranks.

    Ids at or past `vocab_size` (the padding megatron adds to the vocabulary) get no probability.
    """
    import torch.distributed as dist
    from megatron.core import parallel_state

    tp = parallel_state.get_tensor_model_parallel_world_size() if parallel_state.model_parallel_is_initialized() else 1
    rank = parallel_state.get_tensor_model_parallel_rank() if tp > 1 else 0
    local = logits.shape[-1]
    first = rank * local
    ids = torch.arange(first, first + local, device=logits.device)
    logits = logits.masked_fill(ids >= vocab_size, float("-inf"))
    group = parallel_state.get_tensor_model_parallel_group() if tp > 1 else None

    top = logits.detach().max(dim=-1, keepdim=True).values
    if group is not None:
        dist.all_reduce(top, op=dist.ReduceOp.MAX, group=group)
    shifted = logits - top
    exp = shifted.exp()
    owned = (labels >= first) & (labels < first + local)
    picked = torch.gather(shifted, -1, (labels - first).clamp(0, local - 1).unsqueeze(-1)).squeeze(-1)
    picked = torch.where(owned, picked, torch.zeros_like(picked))
    sums = torch.stack([exp.sum(-1), picked, (exp * shifted.masked_fill(exp == 0, 0.0)).sum(-1)])
    if group is not None:  # summed over the ranks forward; each rank's part gets the same gradient back
        from megatron.core.tensor_parallel.mappings import reduce_from_tensor_model_parallel_region

        sums = reduce_from_tensor_model_parallel_region(sums)
    normaliser = sums[0].log()
    logprobs = sums[1] - normaliser
    entropy = normaliser - sums[2] / sums[0]
    return logprobs, entropy

"""GRPO's pure maths: group-relative advantages, the k3 KL estimator and the clipped policy loss.

No model, no megatron: tensors in, tensors out, so every formula is checked by hand and against TRL
(tests/training/rl/test_grpo_trl_parity.py). How the options map to the usual implementations:

| here | TRL `GRPOConfig` | NeMo-RL | verl |
|---|---|---|---|
| `scale_by_std` (off: Dr. GRPO) | `scale_rewards` group/none | `normalize_rewards` | `norm_adv_by_std_in_grpo` |
| `clip_low`, `clip_high` | `epsilon`, `epsilon_high` | `ratio_clip_min`, `ratio_clip_max` | `clip_ratio_low`, `_high` |
| `aggregation="token_mean"` | `loss_type="dapo"` (`"bnpo"`) | `token_level_loss: true` | `loss_agg_mode="token-mean"` |
| `aggregation="sequence_mean"` | `loss_type="grpo"` | `token_level_loss: false` | `"seq-mean-token-mean"` |
| `kl_coef` (k3 estimator) | `beta` | `reference_policy_kl_penalty` | `kl_loss_coef` (`low_var_kl`) |

Differences worth knowing: the baseline is the plain group mean (TRL, verl), not NeMo-RL's leave-one-out
mean; TRL's `scale_rewards="batch"` and `loss_type="dr_grpo"` (÷ max completion length) are not offered;
the k3 term is not clamped (TRL; NeMo-RL and verl clamp it) and is weighted by the ratio only when asked
(`kl_bias_correction`: TRL's `use_bias_correction_kl`, which TRL 1.16 turns on by default). Dr. GRPO is
`scale_by_std=False`, ideally with `token_mean`. Under megatron-core's per-token contract, `token_mean`'s
count sums over micro-batches and data-parallel ranks, so the mean is over the global batch's tokens:
TRL's `dapo`; on one batch it is also `bnpo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AGGREGATIONS = ("token_mean", "sequence_mean")


def group_advantages(
    rewards: torch.Tensor, group_size: int, *, scale_by_std: bool, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each reward minus its group's mean, ÷ (group std + eps) when `scale_by_std`; and which groups are flat.

    `rewards` [n] is laid out prompt-major: group k is `rewards[k*G:(k+1)*G]`. The std is the unbiased
    (Bessel-corrected, ÷ (G-1)) one, as TRL computes it (`trl.trainer.utils.nanstd`), and `eps` (TRL: 1e-4)
    is added to it; a group of one has std 0. Returns (advantages [n], zero_std [n // G] bool: every reward of
    the group equal, so the group has no learning signal; TRL logs their fraction as `frac_reward_zero_std`).
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be one-dimensional [n], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = (rewards if rewards.is_floating_point() else rewards.float()).view(-1, group_size)
    advantages = groups - groups.mean(dim=1, keepdim=True)
    if scale_by_std:
        std = groups.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(groups[:, :1])
        advantages = advantages / (std + eps)
    zero_std = (groups == groups[:, :1]).all(dim=1)
    return advantages.reshape(-1), zero_std


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): e^(ref - lp) - (ref - lp) - 1, never negative."""
    return _k3(ref_logprobs - logprobs)


def _k3(delta: torch.Tensor) -> torch.Tensor:
    return torch.exp(delta) - delta - 1


@dataclass(frozen=True)
class PolicyLoss:
    """One micro-batch's policy loss under megatron-core's per-token contract, and its detached statistics.

    `total` is the sum to back-propagate and `count` what it sums over (tokens for `token_mean`, sequences
    with a token for `sequence_mean`), so `total / count` is the loss; both sum across micro-batches and
    ranks. Each statistic is a detached [sum, count] pair over the masked tokens, to be summed the same way:
    `clip_low_fraction` (ratio < 1 - clip_low where A < 0), `clip_high_fraction` (ratio > 1 + clip_high
    where A > 0) as TRL reports `clip_ratio/low_mean` / `high_mean`, `kl` (mean KL term: k3, times the ratio
    under `kl_bias_correction`, as TRL logs `kl`; 0 without a reference) and `ratio` (mean probability ratio).
    """

    total: torch.Tensor
    count: torch.Tensor
    clip_low_fraction: torch.Tensor
    clip_high_fraction: torch.Tensor
    kl: torch.Tensor
    ratio: torch.Tensor

    def mean(self) -> torch.Tensor:
        """`total / count` (0 when nothing was counted)."""
        return self.total / self.count.clamp(min=1)


def _check_shapes(logprobs: torch.Tensor, others: dict[str, torch.Tensor | None], advantages: torch.Tensor) -> None:
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be [batch, tokens], got shape {tuple(logprobs.shape)}")
    for name, tensor in others.items():
        if tensor is not None and tensor.shape != logprobs.shape:
            shapes = f"{tuple(tensor.shape)}, logprobs {tuple(logprobs.shape)}"
            raise ValueError(f"{name} has shape {shapes}: they must match")
    if advantages.shape != logprobs.shape[:1]:
        raise ValueError(f"advantages must be [batch] = [{logprobs.shape[0]}], got shape {tuple(advantages.shape)}")


def _pair(values: torch.Tensor, mask: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[sum over masked tokens, masked token count], detached."""
    return torch.stack([torch.where(mask, values, 0).sum(), tokens]).detach()


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    aggregation: str,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    kl_bias_correction: bool = False,
) -> PolicyLoss:
    """The clipped surrogate loss of GRPO/PPO over the completion tokens of a micro-batch.

    Per token: -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A) + kl_coef * k3, with
    ratio = e^(logprobs - old_logprobs). `kl_bias_correction` multiplies the k3 term by the ratio, whose
    gradient then is the unbiased reverse-KL gradient even on-policy (DeepSeek-V3.2; TRL's
    `use_bias_correction_kl`). `logprobs`, `old_logprobs`, `ref_logprobs` and `mask` (1 on completion
    tokens) are [b, t]; `advantages` [b]. `aggregation` is `token_mean` (every masked token weighs the
    same) or `sequence_mean` (each sequence's token mean weighs the same: shorter replies count more per
    token). Masked-out positions never reach the loss, its gradient or the statistics, whatever their
    log-probs hold (padding may be -inf).
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
    if kl_coef != 0.0 and ref_logprobs is None:
        raise ValueError(f"kl_coef={kl_coef} needs ref_logprobs (the reference model's log-probs)")
    _check_shapes(logprobs, {"old_logprobs": old_logprobs, "mask": mask, "ref_logprobs": ref_logprobs}, advantages)
    dtype = torch.promote_types(logprobs.dtype, torch.float32)
    valid = mask.bool()
    tokens = valid.sum().to(dtype)
    adv = advantages.to(dtype).unsqueeze(1)

    lp = logprobs.to(dtype)
    # Differences are taken only where the mask is 1: at padding (where -inf - -inf is NaN) they are 0.
    ratio = torch.exp(torch.where(valid, lp - old_logprobs.to(dtype), 0))
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    if ref_logprobs is not None:
        kl = _k3(torch.where(valid, ref_logprobs.to(dtype) - lp, 0))
        if kl_bias_correction:
            kl = kl * ratio
        if kl_coef != 0.0:
            per_token = per_token + kl_coef * kl
    else:
        kl = torch.zeros_like(ratio)
    per_token = torch.where(valid, per_token, 0)

    if aggregation == "token_mean":
        total, count = per_token.sum(), valid.sum()
    else:
        lengths = valid.sum(dim=1)
        total = (per_token.sum(dim=1) / lengths.clamp(min=1).to(dtype)).sum()
        count = (lengths > 0).sum()
    return PolicyLoss(
        total=total,
        count=count.to(torch.int),
        clip_low_fraction=_pair(((ratio < 1 - clip_low) & (adv < 0)).to(dtype), valid, tokens),
        clip_high_fraction=_pair(((ratio > 1 + clip_high) & (adv > 0)).to(dtype), valid, tokens),
        kl=_pair(kl, valid, tokens),
        ratio=_pair(ratio, valid, tokens),
    )

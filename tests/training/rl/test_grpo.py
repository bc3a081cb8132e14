"""GRPO's maths by hand: group advantages, the k3 estimator, the clipped loss, its aggregation and its gradient."""

from __future__ import annotations

import math

import pytest
import torch

from nemotron.training.rl.grpo import AGGREGATIONS, group_advantages, k3_kl, policy_loss

CLIP = {"clip_low": 0.2, "clip_high": 0.3}  # the clip range is [0.8, 1.3]


def _pair(stat: torch.Tensor) -> list[float]:
    return [round(v, 6) for v in stat.tolist()]


# ---- advantages --------------------------------------------------------------------------------


def test_advantages_are_group_relative_and_scaled_by_the_unbiased_std():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 0.0])
    advantages, zero_std = group_advantages(rewards, 4, scale_by_std=True)
    std = math.sqrt(4 * 0.25 / 3)  # ÷ (G - 1)
    scaled = 0.5 / (std + 1e-4)
    assert advantages[:4].tolist() == pytest.approx([scaled, -scaled, -scaled, scaled])
    assert advantages[4:8].tolist() == [0.0] * 4  # a flat group: no signal, no division by zero
    assert advantages[8:].tolist() == pytest.approx([0.25 / (0.5 + 1e-4)] * 3 + [-0.75 / (0.5 + 1e-4)])
    assert zero_std.tolist() == [False, True, False]


def test_dr_grpo_advantages_are_not_scaled():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 3.0, 1.0])
    advantages, zero_std = group_advantages(rewards, 3, scale_by_std=False)
    assert advantages.tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, -4 / 3, 5 / 3, -1 / 3])
    assert zero_std.tolist() == [False, False]


def test_integer_rewards_and_groups_of_one():
    advantages, zero_std = group_advantages(torch.tensor([1, 0, 1]), 1, scale_by_std=True)
    assert advantages.dtype == torch.float32 and advantages.tolist() == [0.0, 0.0, 0.0]
    assert zero_std.tolist() == [True, True, True]


@pytest.mark.parametrize(("rewards", "group_size"), [(torch.zeros(6), 4), (torch.zeros(6), 0), (torch.zeros(2, 3), 3)])
def test_advantages_reject_rewards_that_do_not_form_groups(rewards, group_size):
    with pytest.raises(ValueError, match="rewards"):
        group_advantages(rewards, group_size, scale_by_std=True)


# ---- k3 ----------------------------------------------------------------------------------------


def test_k3_is_zero_when_the_policies_agree_and_positive_otherwise():
    logprobs = torch.tensor([-1.0, -2.0, -0.5])
    assert k3_kl(logprobs, logprobs).tolist() == [0.0, 0.0, 0.0]
    kl = k3_kl(logprobs, logprobs + math.log(2))
    assert kl.tolist() == pytest.approx([2 - math.log(2) - 1] * 3)
    assert (k3_kl(logprobs, torch.randn(3)) >= 0).all()


# ---- the loss ----------------------------------------------------------------------------------


def _two_sequences(requires_grad: bool = False) -> dict[str, torch.Tensor]:
    """Ratios [1.5, 1.0, 0.5] with A = +1, and [0.5, 1.5, pad] with A = -2 (the pad holds garbage)."""
    ratios = torch.tensor([[1.5, 1.0, 0.5], [0.5, 1.5, 9.0]])
    logprobs = ratios.log().requires_grad_(requires_grad)
    return {
        "logprobs": logprobs,
        "old_logprobs": torch.zeros(2, 3),
        "advantages": torch.tensor([1.0, -2.0]),
        "mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
    }


# Per token -min(r*A, clip(r)*A): row 0: -1.3 (clipped high), -1.0, -0.5 (r < 0.8 but A > 0: not clipped);
# row 1: 1.6 (clipped low), 3.0 (r > 1.3 but A < 0: not clipped), pad ignored.
PER_TOKEN = [[-1.3, -1.0, -0.5], [1.6, 3.0]]


def test_token_mean_sums_masked_tokens_and_counts_them():
    loss = policy_loss(**_two_sequences(), **CLIP, aggregation="token_mean")
    assert loss.total.item() == pytest.approx(sum(PER_TOKEN[0] + PER_TOKEN[1]))
    assert loss.count.item() == 5 and loss.count.dtype == torch.int
    assert loss.mean().item() == pytest.approx(1.8 / 5)


def test_sequence_mean_weighs_each_sequence_the_same():
    loss = policy_loss(**_two_sequences(), **CLIP, aggregation="sequence_mean")
    seq_means = [sum(row) / len(row) for row in PER_TOKEN]
    assert loss.total.item() == pytest.approx(sum(seq_means))
    assert loss.count.item() == 2
    assert loss.mean().item() == pytest.approx((-2.8 / 3 + 4.6 / 2) / 2)
    token = policy_loss(**_two_sequences(), **CLIP, aggregation="token_mean")
    assert loss.mean().item() != pytest.approx(token.mean().item())  # lengths differ: the means differ


def test_statistics_are_detached_sum_count_pairs():
    loss = policy_loss(**_two_sequences(True), **CLIP, aggregation="token_mean")
    assert _pair(loss.clip_low_fraction) == [1.0, 5.0]
    assert _pair(loss.clip_high_fraction) == [1.0, 5.0]
    assert _pair(loss.ratio) == [5.0, 5.0]  # 1.5 + 1 + 0.5 + 0.5 + 1.5
    assert _pair(loss.kl) == [0.0, 5.0]  # no reference
    assert not any(s.requires_grad for s in (loss.clip_low_fraction, loss.clip_high_fraction, loss.kl, loss.ratio))


def test_the_gradient_flows_only_through_unclipped_tokens():
    """d(-r*A)/d logprob = -A*r where the unclipped term is the min; 0 where the clip holds it."""
    inputs = _two_sequences(requires_grad=True)
    policy_loss(**inputs, **CLIP, aggregation="token_mean").mean().backward()
    expected = torch.tensor([[0.0, -1.0, -0.5], [0.0, 3.0, 0.0]]) / 5
    torch.testing.assert_close(inputs["logprobs"].grad, expected)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_gradcheck(aggregation):
    generator = torch.Generator().manual_seed(0)
    logprobs = (torch.randn(4, 6, generator=generator, dtype=torch.float64) - 1).requires_grad_()
    old = logprobs.detach() + 0.3 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    ref = logprobs.detach() + 0.3 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    advantages = torch.randn(4, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 5 + [0], [1] + [0] * 5])

    def loss(lp: torch.Tensor) -> torch.Tensor:
        out = policy_loss(lp, old, advantages, mask, **CLIP, aggregation=aggregation, ref_logprobs=ref, kl_coef=0.05)
        return out.mean()

    assert torch.autograd.gradcheck(loss, (logprobs,))


def test_kl_term_adds_to_every_masked_token():
    logprobs = torch.full((2, 3), -1.0, requires_grad=True)
    ref = logprobs.detach() + math.log(2)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    loss = policy_loss(
        logprobs,
        logprobs.detach(),
        torch.zeros(2),
        mask,
        **CLIP,
        aggregation="token_mean",
        ref_logprobs=ref,
        kl_coef=0.1,
    )
    k3 = 2 - math.log(2) - 1
    assert loss.mean().item() == pytest.approx(0.1 * k3)
    assert _pair(loss.kl) == pytest.approx([4 * k3, 4.0])
    loss.mean().backward()  # d k3 / d logprob = 1 - e^(ref - lp) = -1
    torch.testing.assert_close(logprobs.grad, -0.1 * mask.float() / 4)


def test_kl_bias_correction_weights_the_k3_term_by_the_ratio():
    logprobs = torch.full((1, 2), -1.0)
    ref, old = logprobs + math.log(2), logprobs - math.log(1.1)  # ratio 1.1, inside the clip range
    common = {"aggregation": "token_mean", "ref_logprobs": ref, "kl_coef": 1.0, **CLIP}
    plain = policy_loss(logprobs, old, torch.zeros(1), torch.ones(1, 2), **common)
    weighted = policy_loss(logprobs, old, torch.zeros(1), torch.ones(1, 2), **common, kl_bias_correction=True)
    assert weighted.mean().item() == pytest.approx(1.1 * plain.mean().item())
    assert _pair(weighted.kl) == pytest.approx([2 * 1.1 * (2 - math.log(2) - 1), 2.0])


def test_a_flat_group_contributes_no_gradient():
    logprobs = torch.randn(4, 5).requires_grad_()
    advantages, zero_std = group_advantages(torch.ones(4), 4, scale_by_std=True)
    assert zero_std.tolist() == [True]
    loss = policy_loss(
        logprobs, logprobs.detach() + 0.5, advantages, torch.ones(4, 5), **CLIP, aggregation="token_mean"
    )
    loss.mean().backward()
    assert loss.total.item() == 0.0 and (logprobs.grad == 0).all()


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_padding_holding_inf_or_nan_never_reaches_the_loss_or_gradient(aggregation):
    logprobs = torch.tensor([[-1.0, -0.5, -math.inf], [-2.0, -math.inf, -math.inf]], requires_grad=True)
    old = torch.tensor([[-1.1, -0.4, -math.inf], [-2.0, math.nan, math.nan]])
    ref = torch.tensor([[-1.0, -0.6, math.nan], [-2.1, -math.inf, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss = policy_loss(
        logprobs, old, torch.tensor([1.0, -1.0]), mask, **CLIP, aggregation=aggregation, ref_logprobs=ref, kl_coef=0.1
    )
    loss.mean().backward()
    assert torch.isfinite(loss.total)
    assert torch.isfinite(logprobs.grad).all() and (logprobs.grad[mask == 0] == 0).all()
    assert all(torch.isfinite(s).all() for s in (loss.kl, loss.ratio, loss.clip_low_fraction))


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_micro_batches_sum_to_the_whole_batch(aggregation):
    """Megatron-core sums `total` and `count` over micro-batches (and ranks): the result is the batch's loss."""
    generator = torch.Generator().manual_seed(1)
    logprobs = torch.randn(6, 5, generator=generator) - 1
    old = logprobs + 0.3 * torch.randn(6, 5, generator=generator)
    advantages = torch.randn(6, generator=generator)
    mask = (torch.rand(6, 5, generator=generator) > 0.3).int()
    mask[:, 0] = 1
    whole = policy_loss(logprobs, old, advantages, mask, **CLIP, aggregation=aggregation)
    parts = [
        policy_loss(logprobs[s], old[s], advantages[s], mask[s], **CLIP, aggregation=aggregation)
        for s in (slice(0, 2), slice(2, 6))
    ]
    total, count = sum(p.total for p in parts), sum(p.count for p in parts)
    assert (total / count).item() == pytest.approx(whole.mean().item(), rel=1e-6)
    assert sum(p.ratio for p in parts).tolist() == pytest.approx(whole.ratio.tolist())


def test_sequence_mean_does_not_count_empty_sequences():
    loss = policy_loss(
        torch.zeros(3, 2),
        torch.zeros(3, 2),
        torch.ones(3),
        torch.tensor([[1, 1], [0, 0], [1, 0]]),
        **CLIP,
        aggregation="sequence_mean",
    )
    assert loss.count.item() == 2 and loss.total.item() == pytest.approx(-2.0)


def test_bad_arguments_say_what_is_allowed():
    inputs = _two_sequences()
    with pytest.raises(ValueError, match="unknown aggregation 'mean': use one of token_mean, sequence_mean"):
        policy_loss(**inputs, **CLIP, aggregation="mean")
    with pytest.raises(ValueError, match="kl_coef=0.1 needs ref_logprobs"):
        policy_loss(**inputs, **CLIP, aggregation="token_mean", kl_coef=0.1)
    with pytest.raises(ValueError, match="mask has shape"):
        policy_loss(**{**inputs, "mask": torch.ones(2, 4)}, **CLIP, aggregation="token_mean")
    with pytest.raises(ValueError, match="advantages must be"):
        policy_loss(**{**inputs, "advantages": torch.ones(2, 3)}, **CLIP, aggregation="token_mean")

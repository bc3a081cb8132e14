"""Parity with TRL: our advantages and policy loss against TRL's own GRPOTrainer code on the same numbers.

TRL's maths lives inside `GRPOTrainer` methods, so the test calls those methods on a stand-in trainer:

- the trainer is `object.__new__(GRPOTrainer)`: its __init__ would load a model, a tokenizer and datasets.
  The attributes the two methods read are set from a real `GRPOConfig`, the way __init__ sets them, so
  TRL's own option handling (`scale_rewards=True` -> "group", `epsilon_high` defaulting, ...) is in play;
- no model runs: `_get_per_token_logps_and_entropies` (the forward) returns fixed log-probs, a leaf tensor,
  so the gradient of TRL's loss is compared with ours too;
- no generation or reward model: `_generate` returns fixed token ids and `_calculate_rewards` fixed rewards,
  then TRL's `_generate_and_score_completions` computes the advantages as it does in training (with beta > 0
  it also runs the reference model: a stand-in, as the forward above, whose output is not compared);
- one process: the accelerator's gather and reduce are identities, which is what accelerate does there.

Our `sequence_mean` is TRL's `loss_type="grpo"`; `token_mean` is `"bnpo"` on one batch and `"dapo"` on any
number of micro-batches (checked with two); `clip_low`/`clip_high` are `epsilon`/`epsilon_high`; `kl_coef` is
`beta`, and `kl_bias_correction` is `use_bias_correction_kl` (TRL's default: on). The TRL version is pinned
in pyproject.toml's test extra because these are private methods.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from nemotron.training.rl.grpo import group_advantages, policy_loss

trl = pytest.importorskip("trl", reason="TRL is in the test extra: pip install -e '.[test]'")
GRPOConfig, GRPOTrainer = trl.GRPOConfig, trl.GRPOTrainer

# TRL's own config trips transformers' deprecation of `gradient_checkpointing`: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")

GROUP, PROMPTS, TOKENS = 4, 6, 7
BATCH = GROUP * PROMPTS


class _OneProcess:
    """accelerate's Accelerator as it behaves with one process: collectives return their input."""

    device = torch.device("cpu")
    process_index = 0
    num_processes = 1
    sync_gradients = True

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    gather_for_metrics = gather

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor


def _stand_in_trainer(tmp_path, **options) -> GRPOTrainer:
    """A GRPOTrainer without __init__: the attributes its advantage and loss code reads, from a real config."""
    args = GRPOConfig(
        output_dir=str(tmp_path),
        num_generations=GROUP,
        per_device_train_batch_size=BATCH,
        report_to=[],
        use_cpu=True,
        **options,
    )
    trainer = object.__new__(GRPOTrainer)
    attributes = {
        "args": args,
        "accelerator": _OneProcess(),
        "model": SimpleNamespace(training=True, is_gradient_checkpointing=False),
        # As GRPOTrainer.__init__ sets them from `args`:
        "loss_type": args.loss_type,
        "scale_rewards": args.scale_rewards,
        "multi_objective_aggregation": args.multi_objective_aggregation,
        "importance_sampling_level": args.importance_sampling_level,
        "off_policy_mask_threshold": args.off_policy_mask_threshold,
        "mask_truncated_completions": args.mask_truncated_completions,
        "top_entropy_quantile": args.top_entropy_quantile,
        "_entropy_bonus_enabled": args.entropy_coef != 0.0 or args.use_adaptive_entropy,
        "pad_to_multiple_of": args.pad_to_multiple_of,
        "use_vllm": args.use_vllm,
        "vllm_importance_sampling_correction": args.vllm_importance_sampling_correction,
        "num_generations": args.num_generations,
        "num_iterations": args.num_iterations,
        "epsilon_low": args.epsilon,
        "epsilon_high": args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        "beta": args.beta,
        "ref_model": SimpleNamespace(),  # only passed to the stood-in forward
        # What a text-only model without tools, environments or an auxiliary loss gives __init__:
        "aux_loss_enabled": False,
        "environment_factories": None,
        "environments": None,
        "tools": None,
        "reward_func_names": ["stand_in"],
        "reward_weights": torch.ones(1),
        "_tokenizer": SimpleNamespace(pad_token_id=0),
        "_metrics": {"train": defaultdict(list), "eval": defaultdict(list)},
        "_logs": {
            "prompt": [],
            "completion": [],
            "advantages": [],
            "rewards": defaultdict(list),
            "extra": defaultdict(list),
        },
        "_pending_extra_logs": defaultdict(list),
        "_pending_metrics": defaultdict(list),
        # Set by transformers' training loop before each step:
        "current_gradient_accumulation_steps": args.gradient_accumulation_steps,
    }
    for name, value in attributes.items():
        setattr(trainer, name, value)
    return trainer


def _rewards(generator: torch.Generator) -> torch.Tensor:
    """Rewards in {0, 0.5, 1}, with two flat groups (all 1, all 0) among the six."""
    rewards = torch.randint(0, 3, (BATCH,), generator=generator).float() / 2
    rewards[:GROUP] = 1.0
    rewards[2 * GROUP : 3 * GROUP] = 0.0
    return rewards


def _trl_advantages(trainer: GRPOTrainer, rewards: torch.Tensor) -> torch.Tensor:
    """TRL's `_generate_and_score_completions` on fixed completions and rewards."""
    completion_ids = [[1] * (1 + i % TOKENS) for i in range(BATCH)]
    trainer._generate = lambda prompts: (
        [[2, 3]] * len(prompts),  # prompt ids
        completion_ids,
        None,  # tool mask
        ["reply"] * len(prompts),  # completion texts
        None,  # sampling log-probs (vLLM only)
        {},  # extra fields
        None,  # images
        None,  # tool images
    )
    trainer._calculate_rewards = lambda inputs, prompts, completions, ids: rewards.unsqueeze(1).clone()
    # With beta > 0 TRL runs the reference model here; its log-probs are not what is compared.
    trainer._get_per_token_logps_and_entropies = lambda model, ids, mask, keep, **kwargs: (
        torch.zeros(ids.shape[0], keep),
        None,
        None,
    )
    output = trainer._generate_and_score_completions([{"prompt": f"p{i // GROUP}"} for i in range(BATCH)])
    return output["advantages"]


@pytest.mark.parametrize("scale_rewards", [True, False])
def test_advantages_match_trl(tmp_path, scale_rewards):
    rewards = _rewards(torch.Generator().manual_seed(0))
    trainer = _stand_in_trainer(tmp_path, scale_rewards=scale_rewards)
    theirs = _trl_advantages(trainer, rewards)
    ours, zero_std = group_advantages(rewards, GROUP, scale_by_std=scale_rewards)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    flat = zero_std.float().mean().item()
    assert flat == trainer._metrics["train"]["frac_reward_zero_std"][-1] and flat >= 2 / PROMPTS


def _batch(seed: int) -> dict[str, torch.Tensor]:
    """Random log-probs, old log-probs 0.3 away (so both clips are active), a reference, masks of 1..7 tokens."""
    generator = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(BATCH, TOKENS, generator=generator) * 3
    lengths = torch.randint(1, TOKENS + 1, (BATCH,), generator=generator)
    return {
        "logprobs": logprobs,
        "old_logprobs": logprobs + 0.3 * torch.randn(BATCH, TOKENS, generator=generator),
        "ref_logprobs": logprobs + 0.3 * torch.randn(BATCH, TOKENS, generator=generator),
        "mask": (torch.arange(TOKENS) < lengths.unsqueeze(1)).long(),
        "rewards": _rewards(generator),
    }


def _trl_loss(trainer: GRPOTrainer, batch: dict[str, torch.Tensor], advantages: torch.Tensor, rows: slice):
    """TRL's `_compute_loss` on rows of the batch: (loss, gradient w.r.t. all log-probs, logged metrics)."""
    logprobs = batch["logprobs"].clone().requires_grad_()
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (
        logprobs[rows],
        torch.zeros_like(logprobs[rows]),
        None,
    )
    mask = batch["mask"]
    inputs = {
        "prompt_ids": torch.zeros(BATCH, 2, dtype=torch.long)[rows],
        "prompt_mask": torch.ones(BATCH, 2, dtype=torch.long)[rows],
        "completion_ids": torch.ones(BATCH, TOKENS, dtype=torch.long)[rows],
        "completion_mask": mask[rows],
        "advantages": advantages[rows],
        "old_per_token_logps": batch["old_logprobs"][rows],
        "ref_per_token_logps": batch["ref_logprobs"][rows],
        "num_items_in_batch": mask.sum(),  # as TRL counts it: over the whole generation batch
    }
    trainer._metrics["train"].clear()
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), logprobs.grad, dict(trainer._metrics["train"])


def _our_loss(batch, advantages, rows, *, aggregation, epsilon, epsilon_high, beta, bias_correction):
    logprobs = batch["logprobs"].clone().requires_grad_()
    loss = policy_loss(
        logprobs[rows],
        batch["old_logprobs"][rows],
        advantages[rows],
        batch["mask"][rows],
        clip_low=epsilon,
        clip_high=epsilon_high,
        aggregation=aggregation,
        ref_logprobs=batch["ref_logprobs"][rows] if beta else None,
        kl_coef=beta,
        kl_bias_correction=bias_correction,
    )
    return loss, logprobs


CASES = [
    # (TRL loss_type, our aggregation, scale_rewards, beta, use_bias_correction_kl)
    ("grpo", "sequence_mean", True, 0.0, True),
    ("grpo", "sequence_mean", False, 0.04, True),
    ("grpo", "sequence_mean", True, 0.04, False),
    ("bnpo", "token_mean", True, 0.0, True),
    ("bnpo", "token_mean", False, 0.04, True),
    ("bnpo", "token_mean", True, 0.04, False),
    ("dapo", "token_mean", True, 0.0, True),
    ("dapo", "token_mean", False, 0.04, True),
    ("dapo", "token_mean", True, 0.04, False),
]


@pytest.mark.parametrize(("loss_type", "aggregation", "scale_rewards", "beta", "bias_correction"), CASES)
def test_policy_loss_matches_trl(tmp_path, loss_type, aggregation, scale_rewards, beta, bias_correction):
    epsilon, epsilon_high = 0.2, 0.28
    batch = _batch(seed=1)
    trainer = _stand_in_trainer(
        tmp_path,
        loss_type=loss_type,
        scale_rewards=scale_rewards,
        epsilon=epsilon,
        epsilon_high=epsilon_high,
        beta=beta,
        use_bias_correction_kl=bias_correction,
    )
    advantages = _trl_advantages(trainer, batch["rewards"])
    ours_advantages, _ = group_advantages(batch["rewards"], GROUP, scale_by_std=scale_rewards)
    torch.testing.assert_close(ours_advantages, advantages, rtol=0, atol=1e-6)
    theirs, their_grad, metrics = _trl_loss(trainer, batch, advantages, slice(None))

    ours, logprobs = _our_loss(
        batch,
        advantages,
        slice(None),
        aggregation=aggregation,
        epsilon=epsilon,
        epsilon_high=epsilon_high,
        beta=beta,
        bias_correction=bias_correction,
    )
    ours.mean().backward()
    torch.testing.assert_close(ours.mean().detach(), theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(logprobs.grad, their_grad, rtol=0, atol=1e-6)

    low, high = ours.clip_low_fraction, ours.clip_high_fraction
    assert low[0] > 0 and high[0] > 0  # both clips are active somewhere
    assert (low[0] / low[1]).item() == pytest.approx(metrics["clip_ratio/low_mean"][0], abs=1e-6)
    assert (high[0] / high[1]).item() == pytest.approx(metrics["clip_ratio/high_mean"][0], abs=1e-6)
    if beta:
        assert (ours.kl[0] / ours.kl[1]).item() == pytest.approx(metrics["kl"][0], abs=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_token_mean_over_micro_batches_matches_trl_dapo(tmp_path, beta):
    """DAPO divides every micro-batch by the generation batch's token count; megatron-core's per-token contract
    sums our totals and counts over micro-batches, then divides: the same loss and the same gradient."""
    batch = _batch(seed=2)
    trainer = _stand_in_trainer(
        tmp_path, loss_type="dapo", beta=beta, gradient_accumulation_steps=2, steps_per_generation=2
    )
    advantages = _trl_advantages(trainer, batch["rewards"])
    halves = (slice(0, BATCH // 2), slice(BATCH // 2, BATCH))
    trl_parts = [_trl_loss(trainer, batch, advantages, rows) for rows in halves]
    our_parts = [
        _our_loss(
            batch,
            advantages,
            rows,
            aggregation="token_mean",
            epsilon=0.2,
            epsilon_high=0.2,
            beta=beta,
            bias_correction=True,
        )
        for rows in halves
    ]
    count = sum(part.count for part, _ in our_parts)
    for part, _ in our_parts:
        (part.total / count).backward()
    ours = sum(part.total.detach() for part, _ in our_parts) / count
    torch.testing.assert_close(ours, sum(loss for loss, _, _ in trl_parts), rtol=0, atol=1e-6)
    for (_, logprobs), (_, their_grad, _) in zip(our_parts, trl_parts, strict=True):
        torch.testing.assert_close(logprobs.grad, their_grad, rtol=0, atol=1e-6)

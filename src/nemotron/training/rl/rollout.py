"""GRPO's batches for the engine: sample a group of completions per prompt, score them, turn them into micro-batches.

Each data-parallel rank takes whole groups: its share of a step's prompts (`PromptOrder`, seeded),
`group_size` completions each from the current policy (seeded by batch index and rank, so a
resumed run samples what an uninterrupted one would), rewards from the records' verifiers,
group-normalised advantages, then `updates_per_batch` steps of micro-batches over those sequences.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nemotron.training.engine.objective import Batch
from nemotron.training.inference.answers import Scorer
from nemotron.training.inference.prompts import Prompt
from nemotron.training.rl.config import RlConfig
from nemotron.training.rl.prompts import PromptOrder


@dataclass
class Scored:
    """One batch of this rank's rollouts: sequences, where their completions start, rewards and advantages."""

    sequences: list[list[int]]
    prompt_lengths: list[int]
    generation_logprobs: list[list[float]]
    advantages: torch.Tensor  # [n]
    keep: torch.Tensor  # [n] bool: False for dropped zero-std groups
    stats: dict[str, float] = field(default_factory=dict)


Sampler = Callable[[Sequence[Sequence[int]], int], list[Any]]  # (prompts, seed) -> completions


def right_padded(rows: Sequence[Sequence[int] | Sequence[float]], dtype: torch.dtype) -> torch.Tensor:
    """Rows of different lengths as one [n, longest] tensor, zero-padded on the right."""
    longest = max(len(row) for row in rows)
    out = torch.zeros(len(rows), longest, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(list(row), dtype=dtype)
    return out


def micro_batch(scored: Scored, picks: Sequence[int], old: torch.Tensor | None, ref: torch.Tensor | None) -> Batch:
    """Sequences `picks` as one right-padded micro-batch; labels are the next tokens, the mask their completions."""
    rows = [scored.sequences[i] for i in picks]
    tokens = right_padded([row[:-1] for row in rows], torch.long)
    labels = right_padded([row[1:] for row in rows], torch.long)
    length = tokens.shape[1]
    mask = torch.zeros(len(rows), length)
    generated = torch.zeros(len(rows), length)
    for j, i in enumerate(picks):
        start, end = scored.prompt_lengths[i] - 1, len(scored.sequences[i]) - 1  # label positions of the completion
        if scored.keep[i]:
            mask[j, start:end] = 1.0
        generated[j, start:end] = torch.tensor(scored.generation_logprobs[i][: end - start])
    batch: Batch = {
        "tokens": tokens,
        "position_ids": torch.arange(length).unsqueeze(0).expand(len(rows), -1).contiguous(),
        "labels": labels,
        "loss_mask": mask,
        "advantages": scored.advantages[list(picks)],
        "generation_logprobs": generated,
    }
    if old is not None:
        batch["old_logprobs"] = old[list(picks), :length]
    if ref is not None:
        batch["ref_logprobs"] = ref[list(picks), :length]
    return batch


class Rollouts:
    """This rank's micro-batches, step after step from `start_step`, each batch of rollouts sampled when needed.

    `logprobs(model, batch)`: the log-probs of a micro-batch's labels (no gradient), for the old policy
    when several updates share a batch and for the reference model of the KL term.
    """

    def __init__(
        self,
        cfg: RlConfig,
        prompts: Sequence[Prompt],
        sampler: Sampler,
        scorer: Scorer,
        *,
        data_rank: int,
        data_size: int,
        logprobs: Callable[[Batch], torch.Tensor] | None = None,
        reference_logprobs: Callable[[Batch], torch.Tensor] | None = None,
        reduce_stats: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
    ) -> None:
        grpo = cfg.grpo
        self.cfg = cfg
        self.prompts = prompts
        self.sampler = sampler
        self.scorer = scorer
        self.data_rank = data_rank
        self.data_size = data_size
        self.prompts_per_rank = grpo.prompts_per_step // data_size
        self.order = PromptOrder(len(prompts), grpo.prompts_per_step, cfg.train.seed)
        self.logprobs = logprobs
        self.reference_logprobs = reference_logprobs
        self.reduce_stats = reduce_stats
        self.last_stats: dict[str, float] = {}
        self._timer = time.perf_counter()

    def batch_prompts(self, index: int) -> list[Prompt]:
        picked = self.order.batch(index)
        mine = picked[self.data_rank * self.prompts_per_rank : (self.data_rank + 1) * self.prompts_per_rank]
        return [self.prompts[i] for i in mine]

    def sample(self, index: int) -> Scored:
        """Generate, score and normalise batch `index` of this rank (collective only through `reduce_stats`)."""
        from nemotron.training.rl.grpo import group_advantages

        grpo = self.cfg.grpo
        prompts = self.batch_prompts(index)
        repeated = [p.prompt_ids for p in prompts for _ in range(grpo.group_size)]
        started = time.perf_counter()
        seed = (self.cfg.train.seed * 1_000_003 + index) * 4099 + self.data_rank
        completions = self.sampler(repeated, seed)
        generated = time.perf_counter()
        rewards, failures = [], 0
        for k, completion in enumerate(completions):
            reward, failed = self.scorer(prompts[k // grpo.group_size], completion.token_ids)
            rewards.append(reward)
            failures += int(failed)
        scored_at = time.perf_counter()
        reward_tensor = torch.tensor(rewards, dtype=torch.float64)
        advantages, zero_std = group_advantages(reward_tensor.float(), grpo.group_size, scale_by_std=grpo.scale_rewards)
        keep = torch.ones(len(completions), dtype=torch.bool)
        if grpo.drop_zero_std_groups:
            keep = ~zero_std.repeat_interleave(grpo.group_size)
        new_tokens = sum(len(c.token_ids) for c in completions)
        totals = self.reduce_stats(
            torch.tensor(
                [
                    float(reward_tensor.sum()),
                    float((reward_tensor**2).sum()),
                    len(completions),
                    float(zero_std.sum()),
                    len(zero_std),
                    new_tokens,
                    sum(bool(c.stopped) for c in completions),
                    failures,
                ],
                dtype=torch.float64,
            )
        )
        n = float(totals[2])
        mean = float(totals[0]) / n
        stats = {
            "reward_mean": mean,
            "reward_std": max(float(totals[1]) / n - mean * mean, 0.0) ** 0.5,
            "zero_std_groups": float(totals[3]) / float(totals[4]),
            "completion_tokens": float(totals[5]) / n,
            "stopped": float(totals[6]) / n,
            "generation_tokens_per_second": new_tokens / max(generated - started, 1e-9),
            "generation_s": generated - started,
            "scoring_s": scored_at - generated,
        }
        if float(totals[7]):
            stats["verifier_failures"] = float(totals[7])
        return Scored(
            sequences=[list(p) + list(c.token_ids) for p, c in zip(repeated, completions, strict=True)],
            prompt_lengths=[len(p) for p in repeated],
            generation_logprobs=[list(c.logprobs) for c in completions],
            advantages=advantages.float(),
            keep=keep,
            stats=stats,
        )

    def micro_batches(self, start_step: int) -> Iterator[Batch]:
        """The loop's micro-batches from optimizer step `start_step` on (a resume in the middle of a batch's
        updates samples that batch again from the restored policy)."""
        grpo, size = self.cfg.grpo, self.cfg.train.micro_batch_size
        step = start_step
        while True:
            index, update = divmod(step, grpo.updates_per_batch)
            scored = self.sample(index)
            chunks = [range(i, min(i + size, len(scored.sequences))) for i in range(0, len(scored.sequences), size)]
            started = time.perf_counter()
            old = self._all_logprobs(scored, chunks, self.logprobs) if grpo.updates_per_batch > 1 else None
            ref = self._all_logprobs(scored, chunks, self.reference_logprobs) if grpo.kl_coef > 0 else None
            scored.stats["logprob_s"] = time.perf_counter() - started
            self.last_stats = dict(scored.stats)  # step_metrics zeroes its timings once the first update read them
            for _ in range(update, grpo.updates_per_batch):
                for chunk in chunks:
                    yield micro_batch(scored, chunk, old, ref)
                step += 1

    def step_metrics(self) -> dict[str, float]:
        """The stats of the rollouts the last step trained on, and that step's time split (called after each step)."""
        now = time.perf_counter()
        stats = dict(self.last_stats)
        elapsed = now - self._timer
        self._timer = now
        spent = sum(stats.get(key, 0.0) for key in ("generation_s", "scoring_s", "logprob_s"))
        stats["training_s"] = max(elapsed - spent, 0.0)
        for key in ("generation_s", "scoring_s", "logprob_s"):  # only the step that sampled spent them
            self.last_stats[key] = 0.0
        return stats

    def _all_logprobs(
        self, scored: Scored, chunks: list[range], logprobs: Callable[[Batch], torch.Tensor] | None
    ) -> torch.Tensor:
        if logprobs is None:
            raise ValueError("this GRPO setting needs log-probs of the old or reference policy")
        longest = max(len(s) for s in scored.sequences) - 1
        out = torch.zeros(len(scored.sequences), longest)
        for chunk in chunks:
            values = logprobs(micro_batch(scored, chunk, None, None))
            out[list(chunk), : values.shape[1]] = values.float().cpu()
        return out

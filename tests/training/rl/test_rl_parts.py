"""RL's parts without a model run: prompt order, config checks, micro-batch layout, rollouts, log-probs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from nemotron.config.errors import ConfigError
from nemotron.training.datasets.gpt import TrainingDataError
from nemotron.training.inference.prompts import Prompt, PromptDataError, read_prompts
from nemotron.training.model.config import ModelConfig
from nemotron.training.optim.lr_schedules import LRScheduleConfig
from nemotron.training.rl.config import GenerationSection, GrpoSection, RlConfig, RlRefs
from nemotron.training.rl.objective import vocab_parallel_logprobs
from nemotron.training.rl.prompts import PromptOrder
from nemotron.training.rl.rollout import Rollouts, micro_batch
from nemotron.training.run.config import TrainSection

MODEL = ModelConfig(num_layers=1, hidden_size=32, num_attention_heads=2, vocab_size=100, seq_length=64)


def config(prompts_per_step: int = 4, group_size: int = 2, **train) -> RlConfig:
    settings = dict(global_batch_size=prompts_per_step * group_size, micro_batch_size=2, train_iters=3)
    settings.update(train)
    return RlConfig(
        run_name="rl-test",
        model=MODEL,
        train=TrainSection(**settings),
        lr=LRScheduleConfig(kind="constant", lr=1e-4),
        run=RlRefs(data="d:latest", model="m:latest"),
        grpo=GrpoSection(prompts_per_step=prompts_per_step, group_size=group_size),
        generation=GenerationSection(max_new_tokens=8),
    )


def test_each_pass_takes_every_prompt_once_in_a_seeded_order():
    order = PromptOrder(num_prompts=10, batch_size=4, seed=3)
    first_pass = order.batch(0) + order.batch(1) + order.batch(2)[:2]
    assert sorted(first_pass) == list(range(10))
    assert order.batch(2)[2:] == PromptOrder(10, 4, 3)._epoch(1)[:2].tolist()  # the next pass continues
    assert order.batch(5) == PromptOrder(10, 4, 3).batch(5), "a resumed run takes the same prompts"
    assert order.batch(0) != PromptOrder(10, 4, 4).batch(0)
    with pytest.raises(TrainingDataError, match="no prompts"):
        PromptOrder(0, 4, 3)


def test_prompt_records_are_read_and_bad_ones_named(tmp_path):
    good = {"id": "a", "prompt_ids": [1, 2], "expected_answer": "3", "verifier": "exact_match", "metadata": {"k": 1}}
    (tmp_path / "shard_00000.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b"}) + "\n")
    prompts = read_prompts(tmp_path)
    assert [p.id for p in prompts] == ["a", "b"] and prompts[0].prompt_ids == (1, 2)
    assert read_prompts(tmp_path, limit=1) == prompts[:1]
    (tmp_path / "shard_00001.jsonl").write_text('{"id": "c"}\n')
    with pytest.raises(PromptDataError, match=r"shard_00001.jsonl:1: .*data prep rl"):
        read_prompts(tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(global_batch_size=6), "must equal grpo.prompts_per_step"),
        (dict(micro_batch_size=3), "must divide"),
        (dict(train_iters=None), "optimizer steps"),
    ],
)
def test_bad_rl_settings_are_refused_with_the_fix(changes, message):
    with pytest.raises(ConfigError, match=message):
        config(**changes)
    with pytest.raises(ConfigError, match="group_size"):
        GrpoSection(group_size=1)
    with pytest.raises(ConfigError, match="loss_aggregation"):
        GrpoSection(loss_aggregation="sum")
    with pytest.raises(ConfigError, match="clip_high"):
        GrpoSection(clip_high=1.5)


def test_log_probs_and_entropy_exclude_the_vocabulary_padding():
    logits = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 12, (2, 5), generator=torch.Generator().manual_seed(1))
    logprobs, entropy = vocab_parallel_logprobs(logits, labels, vocab_size=12)
    reference = torch.log_softmax(logits[..., :12], dim=-1)
    torch.testing.assert_close(logprobs, reference.gather(-1, labels.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(entropy, -(reference.exp() * reference).sum(-1))


@dataclass
class _Completion:
    token_ids: list[int]
    logprobs: list[float]
    stopped: bool


def test_rollouts_score_groups_and_lay_out_completions_as_the_loss_mask():
    cfg = config(prompts_per_step=2, group_size=2)
    prompts = [Prompt(str(i), (10 + i, 20 + i, 30 + i), str(i), "exact_match") for i in range(4)]
    seeds = []

    def sampler(batch, seed):  # completion k of prompt p: [p0 + k, 99] (99 plays the stop token)
        seeds.append(seed)
        return [_Completion([row[0] + k % 2, 99], [-0.5, -0.25], True) for k, row in enumerate(batch)]

    def scorer(prompt, completion):  # reward 1 for the even completion
        return float((completion[0] - prompt.prompt_ids[0]) == 0), False

    rollouts = Rollouts(cfg, prompts, sampler, scorer, data_rank=0, data_size=1)
    batches = rollouts.micro_batches(0)
    first, second = next(batches), next(batches)
    stats = rollouts.step_metrics()
    assert stats["reward_mean"] == 0.5 and stats["zero_std_groups"] == 0.0 and stats["completion_tokens"] == 2
    assert first["tokens"].shape == (2, 4) and first["labels"][0].tolist()[-2:] == [first["tokens"][0, 0].item(), 99]
    assert first["loss_mask"].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]
    assert first["advantages"][0] > 0 > first["advantages"][1], "the rewarded completion is pushed up"
    assert first["generation_logprobs"][0, 2:].tolist() == [-0.5, -0.25]
    for group in (first, second):  # a micro-batch of 2 holds one group here: advantages centred on its mean
        torch.testing.assert_close(group["advantages"].sum(), torch.tensor(0.0), atol=1e-6, rtol=0)
    next(batches)  # the second step samples the next batch with another seed
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    again = Rollouts(cfg, prompts, sampler, scorer, data_rank=0, data_size=1)
    assert (
        next(again.micro_batches(1))["tokens"].tolist()
        == next(Rollouts(cfg, prompts, sampler, scorer, data_rank=0, data_size=1).micro_batches(1))["tokens"].tolist()
    )
    assert seeds[-1] == seeds[-2] == seeds[1], "a resumed run samples batch 1 with batch 1's seed"


def test_micro_batch_masks_only_kept_completions():
    from nemotron.training.rl.rollout import Scored

    scored = Scored(
        sequences=[[1, 2, 3, 4], [1, 2, 5]],
        prompt_lengths=[2, 2],
        generation_logprobs=[[-1.0, -2.0], [-3.0]],
        advantages=torch.tensor([1.0, -1.0]),
        keep=torch.tensor([True, False]),
    )
    batch = micro_batch(scored, [0, 1], None, None)
    assert batch["loss_mask"].tolist() == [[0, 1, 1], [0, 0, 0]]
    assert batch["labels"].tolist() == [[2, 3, 4], [2, 5, 0]]

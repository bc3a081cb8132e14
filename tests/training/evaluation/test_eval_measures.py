"""The eval measures on tiny random models: each equals an independent computation of the same number."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_artifacts import (
    EOD,
    MODEL,
    TOKENIZER_DIR,
    VOCAB,
    packed_row,
    publish_model,
    publish_pretrain_data,
    publish_sft_data,
    random_model,
    save_model,
)

from nemotron.artifacts import FileRegistry
from nemotron.data.verifiers import exact_match, final_answer
from nemotron.training.evaluation.answers import score_answers
from nemotron.training.evaluation.config import PerplexitySection, RlSection, SftLossSection
from nemotron.training.evaluation.inputs import resolve_model
from nemotron.training.evaluation.loading import load_model
from nemotron.training.evaluation.losses import mean_token_loss, pretrain_batches, sft_batches
from nemotron.training.inference.answers import Vocabulary, verifier_scorer
from nemotron.training.inference.backend import Completion, SamplingParams
from nemotron.training.inference.megatron_backend import generator_for
from nemotron.training.inference.prompts import Prompt
from nemotron.training.model.generate import greedy_tokens

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> FileRegistry:
    return FileRegistry(tmp_path_factory.mktemp("eval-measures") / "artifacts")


@pytest.fixture(scope="module")
def model(dist) -> torch.nn.Module:
    return random_model(0)


def logits_of(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(tokens.shape[-1]).expand_as(tokens)
    with torch.no_grad():
        return model(tokens, positions, None)[..., :VOCAB].float()


def test_perplexity_is_exp_of_the_mean_next_token_loss_on_the_test_split(model, registry, tmp_path):
    rng = np.random.default_rng(0)
    train = [[*rng.integers(100, 200, 40).tolist(), EOD] for _ in range(20)]
    test = [[*rng.integers(1000, 1100, 30).tolist(), EOD] for _ in range(10)]
    data = publish_pretrain_data(registry, "ppl-data", {"train": train, "test": test})
    section = PerplexitySection(split="test", batches=3, micro_batch_size=2)
    held_out = pretrain_batches(section, data.ref, 32, 1234, tmp_path / "cache", registry)
    result = mean_token_loss(model, held_out, CPU)

    total, count = 0.0, 0
    for batch in held_out.batches():  # the same batches again, scored with plain cross-entropy
        assert set(batch["tokens"].unique().tolist()) <= set(range(1000, 1100)) | {EOD}, "only test-split tokens"
        losses = F.cross_entropy(
            logits_of(model, batch["tokens"]).reshape(-1, VOCAB), batch["labels"].reshape(-1), reduction="none"
        )
        total += float((losses * batch["loss_mask"].reshape(-1)).sum())
        count += int(batch["loss_mask"].sum())
    assert result.tokens == count == 3 * 2 * 32
    assert result.loss == pytest.approx(total / count, rel=1e-6)
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)
    assert math.log(VOCAB) - 1 < result.loss < math.log(VOCAB) + 1, "a random model is about uniform"


def conversation(rng: np.random.Generator, prompt: int, answer: int) -> tuple[list[int], list[int]]:
    ids = rng.integers(100, VOCAB, prompt + answer).tolist()
    return ids, [0] * prompt + [1] * answer


def test_sft_loss_is_the_loss_of_each_conversation_on_its_own_assistant_tokens(model, registry):
    rng = np.random.default_rng(1)
    conversations = [conversation(rng, p, a) for p, a in ((9, 6), (12, 10), (7, 20), (10, 5), (15, 12))]
    rows = [packed_row(*conversations[:2]), packed_row(conversations[2]), packed_row(*conversations[3:])]
    data = publish_sft_data(registry, "sft-data", rows)

    def direct(chosen: list[tuple[list[int], list[int]]]) -> tuple[float, int]:
        total, count = 0.0, 0
        for ids, mask in chosen:  # each conversation alone: no packing, no mask between documents
            logits = logits_of(model, torch.tensor([ids]))[0, :-1]
            counted = torch.tensor(mask[1:], dtype=torch.bool)
            total += float(F.cross_entropy(logits[counted], torch.tensor(ids[1:])[counted], reduction="sum"))
            count += int(counted.sum())
        return total / count, count

    result = mean_token_loss(model, sft_batches(SftLossSection(micro_batch_size=2), data.file("test"), 64), CPU)
    loss, tokens = direct(conversations)
    assert result.tokens == tokens == sum(sum(mask) for _, mask in conversations) - 0  # every answer token is a target
    assert result.loss == pytest.approx(loss, abs=1e-5)

    first_two_rows = mean_token_loss(model, sft_batches(SftLossSection(rows=2), data.file("test"), 64), CPU)
    loss, tokens = direct(conversations[:3])
    assert (first_two_rows.loss, first_two_rows.tokens) == (pytest.approx(loss, abs=1e-5), tokens)


def test_greedy_accuracy_and_pass_at_k_match_an_independent_scoring(model, tokenizer):
    vocabulary = Vocabulary(tokenizer, ("<|im_end|>",))
    rng = np.random.default_rng(2)
    prompt_ids = [rng.integers(100, VOCAB, n).tolist() for n in (4, 9, 6, 11, 5, 8)]
    decoded = []
    for ids in prompt_ids:  # the greedy answers, recomputed without a KV cache
        new = greedy_tokens(model, ids, 8, vocab_size=VOCAB, max_length=MODEL.seq_length, device=CPU)
        stop = next((i for i, token in enumerate(new) if token in vocabulary.stop_ids), None)
        decoded.append(vocabulary.decode(new if stop is None else new[: stop + 1]))
    expected = [final_answer(text) if i % 2 == 0 else "not the answer" for i, text in enumerate(decoded)]
    rewards = [exact_match(text, answer, {}) for text, answer in zip(decoded, expected, strict=True)]
    assert sum(rewards) >= 2, "the test needs rewarded answers"
    prompts = [Prompt(f"p{i}", tuple(ids), expected[i], "exact_match") for i, ids in enumerate(prompt_ids)]
    # a nucleus of 0.5 at a tiny temperature (a random model's logits are nearly flat) keeps only the most
    # likely token: the samples are the greedy answers
    section = RlSection(samples_per_prompt=3, temperature=1e-6, top_p=0.5, max_new_tokens=8, max_batch_size=4)
    backend = generator_for(model, MODEL, section.max_batch_size)
    scores = score_answers(prompts, backend, section, vocabulary, verifier_scorer(vocabulary))
    assert [answer.answer for answer in scores.answers] == decoded
    assert scores.greedy_accuracy == pytest.approx(sum(rewards) / len(rewards))
    assert scores.sampled_reward == pytest.approx(scores.greedy_accuracy)
    assert scores.pass_at_k == pytest.approx(scores.greedy_accuracy)
    assert scores.metrics() == {
        "rl_prompts": 6.0,
        "rl_greedy_accuracy": scores.greedy_accuracy,
        "rl_sampled_reward": scores.sampled_reward,
        "rl_pass@3": scores.pass_at_k,
    }


class ScriptedBackend:
    """Greedy: the prompt's first id; sampled: the next of `sampled` (in request order). Records each request."""

    def __init__(self, sampled: list[int]) -> None:
        self.sampled = sampled
        self.requests: list[tuple[list[list[int]], SamplingParams]] = []

    def generate(self, prompts, params):
        self.requests.append(([list(p) for p in prompts], params))
        if params.greedy:
            return [Completion([p[0]], [0.0], True) for p in prompts]
        return [Completion([token], [0.0], True) for token in self.sampled[: len(prompts)]]


def test_pass_at_k_counts_prompts_with_a_rewarded_sample_among_k(tokenizer):
    vocabulary = Vocabulary(tokenizer, ("<|im_end|>",))
    prompts = [Prompt(name, (first,), "", "exact_match") for name, first in (("a", 1), ("b", 0), ("c", 0))]
    backend = ScriptedBackend(sampled=[1, 0, 0, 0, 1, 1])  # a: one of two, b: none, c: both

    def score(prompt: Prompt, completion: list[int]) -> tuple[float, bool]:
        return float(completion == [1]), False

    section = RlSection(samples_per_prompt=2, temperature=0.7, top_p=0.9, max_new_tokens=5, seed=11)
    scores = score_answers(prompts, backend, section, vocabulary, score)
    assert scores.greedy_accuracy == pytest.approx(1 / 3)
    assert scores.sampled_reward == pytest.approx(0.5)
    assert scores.pass_at_k == pytest.approx(2 / 3)
    (greedy_prompts, greedy), (sampled_prompts, sampled) = backend.requests
    assert greedy_prompts == [[1], [0], [0]] and greedy.greedy
    assert sampled_prompts == [[1], [1], [0], [0], [0], [0]], "k copies of each prompt, side by side"
    assert (sampled.temperature, sampled.top_p, sampled.seed, sampled.max_new_tokens) == (0.7, 0.9, 11, 5)
    assert sampled.stop_ids == greedy.stop_ids == vocabulary.stop_ids
    greedy_section = dataclasses.replace(section, samples_per_prompt=0)
    greedy_only = score_answers(prompts, ScriptedBackend([]), greedy_section, vocabulary, score)
    assert greedy_only.sampled_reward is None and set(greedy_only.metrics()) == {"rl_prompts", "rl_greedy_accuracy"}


def test_a_checkpoint_is_evaluated_with_its_own_architecture_and_weights(model, registry, tmp_path):
    info = save_model(model, tmp_path / "run")
    source = resolve_model(str(info.path), registry)
    assert source.config == MODEL and source.tokenizer_dir == TOKENIZER_DIR and source.step == 0
    loaded = load_model(source, CPU)
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(logits_of(loaded, tokens), logits_of(model, tokens), rtol=0, atol=0)
    published = publish_model(registry, "eval-me", model, tmp_path / "published")
    assert resolve_model("eval-me:latest", registry).label == published.ref == "eval-me:v1"

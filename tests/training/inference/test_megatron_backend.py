"""MegatronGenerator on a tiny random megatron-core GPTModel: decoding with either KV cache equals full passes."""

from __future__ import annotations

import pytest
import torch

from nemotron.training.inference.backend import Completion, GenerationError, SamplingParams
from nemotron.training.inference.megatron_backend import KV_CACHES, MegatronGenerator
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.model.generate import greedy_tokens

MODEL = ModelConfig(  # SwiGLU, RMSNorm and RoPE by default; GQA: 4 heads in 2 groups
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    vocab_size=256,
    seq_length=64,
    make_vocab_size_divisible_by=128,
)
CPU = torch.device("cpu")
LENGTHS = (5, 9, 3, 12, 7, 3)


@pytest.fixture(scope="module")
def model(dist):
    torch.manual_seed(0)
    return build_model(MODEL, ParallelConfig(), "cpu")


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    generator = torch.Generator().manual_seed(3)
    return [torch.randint(0, MODEL.vocab_size, (n,), generator=generator).tolist() for n in LENGTHS]


def generator(model: torch.nn.Module, **kwargs) -> MegatronGenerator:
    settings = dict(vocab_size=MODEL.vocab_size, max_length=MODEL.seq_length, device=CPU, max_batch_size=8)
    return MegatronGenerator(model, **{**settings, **kwargs})


def full_logprobs(
    model: torch.nn.Module, prompt: list[int], completion: Completion, temperature: float
) -> torch.Tensor:
    """log_softmax(logits / temperature) of a full forward pass at each completion token."""
    ids = torch.tensor([prompt + completion.token_ids])
    with torch.no_grad():
        logits = model(ids, torch.arange(ids.shape[1])[None], None)[0, len(prompt) - 1 : -1, : MODEL.vocab_size]
    scaled = torch.log_softmax(logits.float() / temperature, dim=-1)
    return scaled.gather(-1, torch.tensor(completion.token_ids)[:, None]).squeeze(-1)


@pytest.mark.parametrize("kv_cache", KV_CACHES)
def test_greedy_with_the_kv_cache_equals_full_recomputation(model, prompts, kv_cache):
    model.eval()
    completions = generator(model, kv_cache=kv_cache).generate(
        prompts, SamplingParams(max_new_tokens=16, temperature=0)
    )
    assert len(completions) == len(prompts)
    for prompt, completion in zip(prompts, completions, strict=True):
        expected = greedy_tokens(
            model, prompt, 16, vocab_size=MODEL.vocab_size, max_length=MODEL.seq_length, device=CPU
        )
        assert completion.token_ids == expected
        assert not completion.stopped
        torch.testing.assert_close(
            torch.tensor(completion.logprobs), full_logprobs(model, prompt, completion, 1.0), rtol=0, atol=1e-4
        )


@pytest.mark.parametrize("kv_cache", KV_CACHES)
@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_sampled_logprobs_are_those_of_a_full_forward_pass(model, prompts, temperature, top_p, kv_cache):
    params = SamplingParams(max_new_tokens=12, temperature=temperature, top_p=top_p, seed=5)
    for prompt, completion in zip(prompts, generator(model, kv_cache=kv_cache).generate(prompts, params), strict=True):
        assert len(completion.token_ids) == len(completion.logprobs) == 12
        expected = full_logprobs(model, prompt, completion, temperature)
        torch.testing.assert_close(torch.tensor(completion.logprobs), expected, rtol=0, atol=1e-4)


def test_sampling_is_deterministic_for_a_seed_and_batch_size(model, prompts):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=1)
    first = generator(model).generate(prompts, params)
    assert generator(model).generate(prompts, params) == first
    other_batching = generator(model, max_batch_size=2).generate(prompts, params)
    assert [c.token_ids for c in other_batching] == [c.token_ids for c in first]
    other_seed = generator(model).generate(prompts, SamplingParams(max_new_tokens=12, temperature=1.0, seed=2))
    assert [c.token_ids for c in other_seed] != [c.token_ids for c in first]
    # the same prompt twice in one request gets two different samples (each prompt has its own generator)
    twice = generator(model).generate([prompts[0], prompts[0]], params)
    assert twice[0].token_ids != twice[1].token_ids


def test_a_tiny_top_p_is_greedy(model, prompts):
    greedy = generator(model).generate(prompts, SamplingParams(max_new_tokens=10, temperature=0))
    nucleus = generator(model).generate(prompts, SamplingParams(max_new_tokens=10, temperature=1.0, top_p=1e-6))
    assert [c.token_ids for c in nucleus] == [c.token_ids for c in greedy]


@pytest.mark.parametrize("kv_cache", KV_CACHES)
def test_a_stop_id_ends_its_completion_and_the_others_go_on(model, prompts, kv_cache):
    free = generator(model, kv_cache=kv_cache).generate(prompts, SamplingParams(max_new_tokens=16, temperature=0))
    # a token that the first completion produces (not first) and at least one other completion never does
    stop = next(
        t for t in free[0].token_ids[1:] if any(t not in c.token_ids for c in free[1:]) and t != free[0].token_ids[0]
    )
    params = SamplingParams(max_new_tokens=16, temperature=0, stop_ids=(stop,))
    stopped = generator(model, kv_cache=kv_cache).generate(prompts, params)
    outcomes = set()
    for unconstrained, completion in zip(free, stopped, strict=True):
        ids = unconstrained.token_ids
        expected = ids[: ids.index(stop) + 1] if stop in ids else ids
        assert completion.token_ids == expected
        assert completion.stopped == (stop in ids)
        assert completion.logprobs == pytest.approx(unconstrained.logprobs[: len(expected)], abs=1e-5)
        outcomes.add(completion.stopped)
    assert outcomes == {True, False}
    assert len(stopped[0].token_ids) < 16


class PaddingFavoured(torch.nn.Module):
    """The model with huge logits on every id from `vocab_size` up (the vocabulary padding)."""

    def __init__(self, module: torch.nn.Module, vocab_size: int) -> None:
        super().__init__()
        self.module, self.vocab_size = module, vocab_size

    def forward(self, *args, **kwargs) -> torch.Tensor:
        logits = self.module(*args, **kwargs).clone()
        logits[..., self.vocab_size :] = 1e4
        return logits


def test_vocabulary_padding_is_never_sampled(model, prompts):
    vocab = 200
    wrapped = PaddingFavoured(model, vocab)
    clipped = [[t % vocab for t in p] for p in prompts]
    for params in (SamplingParams(max_new_tokens=16, temperature=0), SamplingParams(max_new_tokens=16, seed=3)):
        completions = generator(wrapped, vocab_size=vocab).generate(clipped, params)
        assert all(0 <= t < vocab for c in completions for t in c.token_ids)
        assert all(len(c.token_ids) == 16 for c in completions)
    greedy = generator(wrapped, vocab_size=vocab).generate(clipped[:1], SamplingParams(max_new_tokens=8, temperature=0))
    assert greedy[0].token_ids == greedy_tokens(wrapped, clipped[0], 8, vocab_size=vocab, max_length=64, device=CPU)


def test_max_length_truncates_completions_and_refuses_full_prompts(model, prompts):
    completions = generator(model, max_length=16).generate(prompts, SamplingParams(max_new_tokens=10, temperature=0))
    for prompt, completion in zip(prompts, completions, strict=True):
        assert len(completion.token_ids) == min(10, 16 - len(prompt))
        assert not completion.stopped
    with pytest.raises(GenerationError, match="leaves no room below max_length=12"):
        generator(model, max_length=12).generate(prompts, SamplingParams(max_new_tokens=1))
    with pytest.raises(GenerationError, match="exceeds the model's sequence length 64"):
        generator(model, max_length=65)


def test_the_model_is_left_in_its_mode_and_without_gradients(model, prompts):
    model.train()
    completions = generator(model).generate(prompts[:2], SamplingParams(max_new_tokens=3))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert len(completions) == 2
    model.eval()


@pytest.mark.parametrize(
    "prompts_in,message",
    [([[]], "prompt 0 is empty"), ([[1], [256]], r"prompt 1 has token ids outside the vocabulary \[0, 256\)")],
)
def test_bad_prompts_are_refused(model, prompts_in, message):
    with pytest.raises(GenerationError, match=message):
        generator(model).generate(prompts_in, SamplingParams(max_new_tokens=2))


def test_a_stop_id_outside_the_vocabulary_is_refused(model, prompts):
    with pytest.raises(GenerationError, match="stop id 300 is outside the vocabulary"):
        generator(model).generate(prompts, SamplingParams(max_new_tokens=2, stop_ids=(300,)))


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(max_new_tokens=0), "max_new_tokens must be a positive integer"),
        (dict(max_new_tokens=2, temperature=-0.5), "temperature must be a finite number >= 0"),
        (dict(max_new_tokens=2, temperature=float("nan")), "temperature must be a finite number >= 0"),
        (dict(max_new_tokens=2, top_p=0.0), r"top_p must be in \(0, 1\]"),
        (dict(max_new_tokens=2, top_p=1.5), r"top_p must be in \(0, 1\]"),
        (dict(max_new_tokens=2, stop_ids=[1]), "stop_ids must be a tuple of token ids"),
        (dict(max_new_tokens=2, stop_ids=(-1,)), "stop_ids must be a tuple of token ids"),
        (dict(max_new_tokens=2, seed=-1), "seed must be an integer >= 0"),
    ],
)
def test_sampling_params_are_validated(settings, message):
    with pytest.raises(GenerationError, match=message):
        SamplingParams(**settings)


def test_generator_settings_are_validated(model):
    with pytest.raises(GenerationError, match="positive integer max_batch_size"):
        generator(model, max_batch_size=0)
    with pytest.raises(GenerationError, match="kv_cache='paged' is not one of rotated, megatron"):
        generator(model, kv_cache="paged")


def test_the_rotated_cache_leaves_the_model_as_it_was(model, prompts):
    """While generating, the self-attention layers run the cache's forward; afterwards megatron's own again."""
    before = model(torch.tensor([prompts[3]]), torch.arange(len(prompts[3]))[None], None)
    generator(model).generate(prompts, SamplingParams(max_new_tokens=4, temperature=0))
    assert not any("forward" in vars(module) for module in model.modules())
    after = model(torch.tensor([prompts[3]]), torch.arange(len(prompts[3]))[None], None)
    assert after.shape == before.shape and torch.equal(after, before)

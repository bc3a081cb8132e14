"""Batched sampling from a megatron-core GPTModel with a KV cache: nemotron's rotated-key cache or megatron's.

Which KV cache (`kv_cache`), and why (megatron-core 0.16.1):

- `rotated` (the default, `cached_attention.CachedAttention`): while generating, each self-attention
  layer keeps its keys after RoPE and attends with torch's scaled_dot_product_attention over grouped
  heads without copying them; the rest of each layer is megatron's code. Only the last position
  reaches the output layer. On the CPU a decode step takes 0.63-0.97x the time of megatron's static
  path (the least gain at batch 1; benchmarks/generation.py).
- `megatron`: megatron-core's `StaticInferenceContext` passed as `inference_context=` to
  `GPTModel.forward`. It works on the CPU with the local layer spec under `cpu_compat` unchanged (its
  buffers are allocated on `torch.cuda.current_device()`, which the shim answers with the CPU), and on
  a GPU with either layer spec; it caches keys before RoPE and rotates the whole cache again at every
  step, and its local attention repeats the grouped key/value heads. Its `flash_decode` option, which
  would rotate once, calls flash-attn kernels in its decode branch, and its non-flash fallback for
  the rotation gives wrong logits on the CPU (0.05 off a full forward pass on the tiny model).
- Both give the logits of a full forward pass (tested for each).
- Not used: megatron's `TextGenerationController` / `StaticInferenceEngine`. Its static-batch loop
  calls `.cuda()` and records `torch.cuda.Event`s, it needs a text tokenizer (tokenize/detokenize,
  bos/eod), and it samples with one generator for the whole batch. `DynamicInferenceContext`
  (paged KV cache, the engine's default) needs flash-attn >= 2.7.3 kernels
  (`flash_attn_varlen_func`, `flash_attn_with_kvcache`), so it is GPU-only.

The loop here is the controller's static-batch scheme, with our sampling:

- Prompts are left-aligned in one token buffer. The first forward pass (prefill) covers the
  shortest prompt's length; every later pass is one position for every row. A row whose prompt
  is longer than the current position is fed its next prompt token; the other rows sample. No
  padding token is ever fed to the model or sampled. Every row's positions are 0, 1, ...
- A finished row (stop id, max_new_tokens, or max_length) leaves the batch. Its slice of the
  cache is dropped too: the per-layer key/value buffers are index-selected on their batch dimension.
- Prompts are sorted by length before being split into batches of max_batch_size. Rows of one
  batch then have similar lengths, so few of the one-position passes only feed prompt tokens.
- Logits are taken over the real vocabulary only (`[:vocab_size]`), so the padding ids are never
  sampled. In inference mode GPTModel requires `runtime_gather_output=True`: its output layer
  gathers the vocabulary shards across tensor-parallel ranks
  (`gather_from_tensor_model_parallel_region`). Every TP rank then sees the whole logits and,
  with the same seed, samples the same tokens.
- Sampling is seeded per prompt (see `sampling.prompt_uniforms`): the same request gives the same
  completions run to run, whatever max_batch_size is. The one caveat is floating point: a
  different batch composition can change the logits in their last bits.
- Length limit: a completion stops at `max_length` tokens including its prompt (stopped=False).
  A prompt that leaves no room for one new token is an error.
- The model runs in eval mode under torch.no_grad (its mode is restored afterwards). Not
  torch.inference_mode: RotaryEmbedding.forward is lru_cached per length, and a table first built
  in inference mode would later reach training's backward pass as an inference tensor.

Speed on the CPU (benchmarks/generation.py): one decode step of megatron's GPTModel (local spec) still
takes longer than one of transformers' Llama with the same weights (megatron's parallel linear layers
cost more per call); the loop here adds little.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

import torch
from megatron.core import parallel_state
from megatron.core.inference.contexts import StaticInferenceContext

from nemotron.training.inference.backend import Completion, GenerationError, SamplingParams
from nemotron.training.inference.cached_attention import CachedAttention, gpt_model
from nemotron.training.inference.sampling import choose_tokens, prompt_uniforms
from nemotron.training.model.config import ModelConfig


class MegatronGenerator:
    """A GenerationBackend over a megatron-core GPTModel in this process (pipeline parallel size 1).

    `model` may be wrapped (DDP, Float16Module) as long as the wrapper passes keyword arguments on.
    Collective over tensor-parallel ranks: every rank calls `generate` with the same request.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        vocab_size: int,
        max_length: int,
        device: torch.device | str,
        max_batch_size: int = 64,
        kv_cache: str = "rotated",
    ) -> None:
        if kv_cache not in KV_CACHES:
            raise GenerationError(f"kv_cache={kv_cache!r} is not one of {', '.join(KV_CACHES)}")
        for name, value in (("vocab_size", vocab_size), ("max_length", max_length), ("max_batch_size", max_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GenerationError(f"MegatronGenerator needs a positive integer {name}, got {value!r}")
        core = gpt_model(model)
        model_limit = getattr(core, "max_sequence_length", None)
        if isinstance(model_limit, int) and max_length > model_limit:
            raise GenerationError(
                f"max_length {max_length} exceeds the model's sequence length {model_limit}; "
                "generate at most model.seq_length tokens (prompt included)"
            )
        config = getattr(core, "config", None)
        if getattr(config, "sequence_parallel", False):
            raise GenerationError(
                "generation does not support a model built with parallel.sequence_parallel "
                "(one-token decode steps cannot be split over the tensor ranks); build it without"
            )
        self.model = model
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.device = torch.device(device)
        self.max_batch_size = max_batch_size
        self.kv_cache = kv_cache

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """One completion per prompt, in order (see the module docstring for batching and limits)."""
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:
            raise GenerationError("generation needs the whole model in one process (pipeline parallel size 1)")
        checked = [self._check_prompt(i, prompt) for i, prompt in enumerate(prompts)]
        for stop_id in params.stop_ids:
            if stop_id >= self.vocab_size:
                raise GenerationError(f"stop id {stop_id} is outside the vocabulary (size {self.vocab_size})")
        order = sorted(range(len(checked)), key=lambda i: len(checked[i]))
        results: dict[int, Completion] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for first in range(0, len(order), self.max_batch_size):
                    indices = order[first : first + self.max_batch_size]
                    batch = self._generate_batch([checked[i] for i in indices], indices, params)
                    results.update(zip(indices, batch, strict=True))
        finally:
            self.model.train(was_training)
        return [results[i] for i in range(len(checked))]

    def _check_prompt(self, index: int, prompt: Sequence[int]) -> list[int]:
        ids = [int(token) for token in prompt]
        if not ids:
            raise GenerationError(f"prompt {index} is empty; every prompt needs at least one token")
        if len(ids) >= self.max_length:
            raise GenerationError(
                f"prompt {index} has {len(ids)} tokens, which leaves no room below max_length={self.max_length}; "
                "shorten the prompt or raise max_length"
            )
        bad = [token for token in ids if not 0 <= token < self.vocab_size]
        if bad:
            raise GenerationError(
                f"prompt {index} has token ids outside the vocabulary [0, {self.vocab_size}): {bad[:5]}"
            )
        return ids

    def _generate_batch(self, prompts: list[list[int]], indices: list[int], params: SamplingParams) -> list[Completion]:
        """Complete one batch of prompts (sorted by length) with one KV cache."""
        lengths = [len(p) for p in prompts]
        limits = [min(n + params.max_new_tokens, self.max_length) for n in lengths]
        tokens = torch.zeros(len(prompts), max(limits), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            tokens[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        tokens = tokens.to(self.device)
        uniforms = None if params.greedy else prompt_uniforms(params.seed, indices, params.max_new_tokens)
        cache = _new_cache(self.kv_cache, self.model, len(prompts), max(limits))
        out_tokens: list[list[int]] = [[] for _ in prompts]
        out_logprobs: list[list[float]] = [[] for _ in prompts]
        stopped = [False] * len(prompts)
        stop_ids = set(params.stop_ids)
        rows = list(range(len(prompts)))  # batch rows still generating, in the cache's order
        start, end = 0, min(lengths)
        with cache.active():
            while rows:
                row_index = torch.tensor(rows, device=self.device)
                logits = self._forward(tokens[row_index, start:end], start, cache)
                cache.advance(end - start)
                sampling = [slot for slot, row in enumerate(rows) if lengths[row] <= end]  # others feed prompt ids
                if sampling:
                    sampled_rows = [rows[slot] for slot in sampling]
                    draws = None
                    if uniforms is not None:
                        draws = uniforms[sampled_rows, [len(out_tokens[row]) for row in sampled_rows]]
                    new, logprobs = choose_tokens(logits[sampling, : self.vocab_size], params, draws)
                    tokens[torch.tensor(sampled_rows, device=self.device), end] = new
                    for row, token, logprob in zip(sampled_rows, new.tolist(), logprobs.tolist(), strict=True):
                        out_tokens[row].append(token)
                        out_logprobs[row].append(logprob)
                        stopped[row] = token in stop_ids
                keep = [slot for slot, row in enumerate(rows) if not (stopped[row] or end + 1 >= limits[row])]
                if keep and len(keep) < len(rows):
                    cache.keep_rows(torch.tensor(keep, dtype=torch.long, device=self.device))
                rows = [rows[slot] for slot in keep]
                start, end = end, end + 1
                if rows and all(lengths[row] <= start for row in rows):
                    cache.prompts_done()
        return [
            Completion(token_ids=t, logprobs=lp, stopped=s)
            for t, lp, s in zip(out_tokens, out_logprobs, stopped, strict=True)
        ]

    def _forward(self, tokens: torch.Tensor, start: int, cache: _Cache) -> torch.Tensor:
        """Logits [rows, padded vocab] after the last of `tokens` (positions start, start + 1, ...)."""
        positions = torch.arange(start, start + tokens.shape[1], device=self.device).unsqueeze(0)
        logits = cache.logits(tokens, positions.expand(tokens.shape[0], -1))
        if logits.shape[-1] < self.vocab_size:
            raise GenerationError(
                f"the model's logits have {logits.shape[-1]} entries but vocab_size is {self.vocab_size}; "
                "pass the tokenizer's vocabulary size the model was built with"
            )
        return logits[:, -1, :]


class _Cache(Protocol):
    """A KV cache for one batch: the model's logits through it, positions advanced, rows dropped."""

    def active(self) -> AbstractContextManager[None]: ...

    def logits(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor: ...

    def advance(self, positions: int) -> None: ...

    def keep_rows(self, keep: torch.Tensor) -> None: ...

    def prompts_done(self) -> None: ...


class _StaticCache:
    """megatron-core's StaticInferenceContext passed to GPTModel.forward (keys cached before RoPE)."""

    def __init__(self, model: torch.nn.Module, batch_size: int, max_length: int) -> None:
        self.model = model
        self.context = StaticInferenceContext(max_batch_size=batch_size, max_sequence_length=max_length)

    def active(self) -> AbstractContextManager[None]:
        return nullcontext()

    def logits(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, positions, None, inference_context=self.context, runtime_gather_output=True)

    def advance(self, positions: int) -> None:
        self.context.increment_sequence_len_offset(positions)

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Drop finished rows from megatron's per-layer key/value buffers ([seq, batch, groups, dim])."""
        buffers = self.context.key_value_memory_dict
        for layer, (keys, values) in list(buffers.items()):
            buffers[layer] = (keys.index_select(1, keep), values.index_select(1, keep))

    def prompts_done(self) -> None:
        self.context.enable_decode_mode()


class _RotatedCache(CachedAttention):
    """CachedAttention (keys cached after RoPE, grouped heads unrepeated) behind the same calls."""

    def __init__(self, model: torch.nn.Module, max_length: int) -> None:
        super().__init__(model, max_length)
        self.model = model

    def logits(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, positions, None, runtime_gather_output=True)

    def prompts_done(self) -> None:
        pass


KV_CACHES = ("rotated", "megatron")


def _new_cache(kind: str, model: torch.nn.Module, batch_size: int, max_length: int) -> _Cache:
    return _RotatedCache(model, max_length) if kind == "rotated" else _StaticCache(model, batch_size, max_length)


def generator_for(model: torch.nn.Module, config: ModelConfig, max_batch_size: int) -> MegatronGenerator:
    """Generation from `model` (built for `config`, up to its sequence length) on the device its weights are on."""
    device = next(model.parameters()).device
    return MegatronGenerator(
        model, vocab_size=config.vocab_size, max_length=config.seq_length, device=device, max_batch_size=max_batch_size
    )

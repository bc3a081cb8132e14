"""A KV cache for megatron-core's self-attention while generating: keys kept rotated, grouped heads unrepeated.

megatron-core's static inference path (`StaticInferenceContext`) caches keys before RoPE and rotates the
whole cache again at every step, and its local attention copies each key/value group once per query
head (`repeat_interleave`): on the CPU ~35% of a decode step. While `CachedAttention` is active, every
`SelfAttention` of the model runs this forward instead: megatron's own query/key/value projection
(q/k layer norms included), RoPE on the new positions only, the new keys and values appended to
preallocated buffers, `torch.nn.functional.scaled_dot_product_attention` with grouped-query heads
(`enable_gqa`, no copies) and megatron's own output projection. Everything else of the layer (norms,
MLP, residuals, tensor-parallel reductions) is megatron's code unchanged.

Call the model without `inference_context`: positions `start, start + 1, ...` of every row; the
first call of a new cache must start at 0; the model returns the logits of the last position only.
Finished rows can be dropped (`keep_rows`).
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from nemotron.training.inference.backend import GenerationError


class CachedAttention:
    """Per-layer key/value buffers [max_length, batch, groups, dim], made at the first pass; the position reached."""

    def __init__(self, model: torch.nn.Module, max_length: int) -> None:
        self.core: Any = gpt_model(model)  # a megatron GPTModel (untyped)
        config = self.core.config
        if getattr(config, "attention_output_gate", False) or getattr(config, "multi_latent_attention", False):
            raise GenerationError(
                "the rotated KV cache supports plain self-attention (no output gate, no multi-latent attention); "
                "generate with kv_cache='megatron'"
            )
        self.max_length = max_length
        self.offset = 0  # positions cached so far
        self._buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        rotary = getattr(self.core, "rotary_pos_emb", None)
        uses_rope = getattr(self.core, "position_embedding_type", None) == "rope"
        self._freqs = rotary(max_length) if uses_rope and rotary is not None else None

    @contextmanager
    def active(self) -> Iterator[None]:
        """The model's self-attention layers use this cache inside the block (restored after it)."""
        patched = []
        # only the last position's hidden state reaches the output layer: the logits of a prompt's other
        # positions are never used
        last_only = self.core.decoder.register_forward_hook(_last_position)
        try:
            for module in self.core.modules():
                if _is_self_attention(module):
                    module.forward = types.MethodType(_forward_with(self), module)
                    patched.append(module)
            yield
        finally:
            last_only.remove()
            for module in patched:
                del module.forward

    def advance(self, positions: int) -> None:
        """Record that the last forward pass cached `positions` more positions."""
        self.offset += positions

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Only rows `keep` (indices into the current rows, in order) go on generating."""
        for layer, (keys, values) in list(self._buffers.items()):
            self._buffers[layer] = (keys.index_select(1, keep), values.index_select(1, keep))

    def _append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store `key`/`value` [new, batch, groups, dim] at the current offset; all cached so far."""
        if layer not in self._buffers:
            shape = (self.max_length, key.shape[1], key.shape[2], key.shape[3])
            self._buffers[layer] = (key.new_empty(shape), value.new_empty(shape))
        keys, values = self._buffers[layer]
        end = self.offset + key.shape[0]
        if end > self.max_length:
            raise ValueError(f"position {end} is past the cache's max_length {self.max_length}")
        keys[self.offset : end] = key
        values[self.offset : end] = value
        return keys[:end], values[:end]


def _forward_with(cache: CachedAttention) -> Any:
    def forward(self: Any, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        query, key, value = self.get_query_key_value_tensors(hidden_states, None)
        # query [new, batch, groups, heads per group * dim] -> [new, batch, heads, dim]
        query = query.reshape(query.shape[0], query.shape[1], -1, self.hidden_size_per_attention_head)
        new = query.shape[0]
        if cache._freqs is not None:
            from megatron.core.models.common.embeddings.rope_utils import apply_rotary_pos_emb

            freqs = cache._freqs[cache.offset : cache.offset + new]
            query = apply_rotary_pos_emb(query, freqs, config=self.config)
            key = apply_rotary_pos_emb(key, freqs, config=self.config)
        keys, values = cache._append(self.layer_number, key, value)
        # [seq, batch, heads, dim] -> [batch, heads, seq, dim]
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, keys, values))
        mask = None
        if new > 1:  # new position i (absolute offset + i) sees cached positions 0 .. offset + i
            rows = torch.arange(cache.offset, cache.offset + new, device=q.device).unsqueeze(1)
            mask = torch.arange(keys.shape[0], device=q.device).unsqueeze(0) <= rows
        scale = self.config.softmax_scale or 1.0 / math.sqrt(self.hidden_size_per_attention_head)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        out = out.permute(2, 0, 1, 3).reshape(new, out.shape[0], -1)
        return self.linear_proj(out)

    return forward


def _last_position(module: torch.nn.Module, args: Any, output: Any) -> Any:
    """The decoder's output [seq, batch, hidden] cut to its last position."""
    return output[-1:] if isinstance(output, torch.Tensor) else output


def _is_self_attention(module: torch.nn.Module) -> bool:
    from megatron.core.transformer.attention import SelfAttention

    return isinstance(module, SelfAttention)


def gpt_model(model: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside DDP / Float16Module wrappers (their `.module`)."""
    inner = getattr(model, "module", None)
    while isinstance(inner, torch.nn.Module):
        model, inner = inner, getattr(inner, "module", None)
    return model

"""Model FLOPs per token against the 6N rule of thumb, and MFU for known and unknown devices."""

from __future__ import annotations

import dataclasses

import pytest

from nemotron.training.model.config import ModelConfig, MoEConfig, parameter_count
from nemotron.training.model.flops import mfu, peak_flops, training_flops_per_token

GPT_1B = ModelConfig(
    num_layers=16,
    hidden_size=2048,
    num_attention_heads=16,
    num_query_groups=8,
    ffn_hidden_size=8192,
    vocab_size=131072,
    seq_length=4096,
)


def test_dense_model_is_close_to_six_n_plus_attention():
    n = parameter_count(GPT_1B)
    attention = 3 * GPT_1B.num_layers * 4 * GPT_1B.seq_length * GPT_1B.hidden_size
    embedding = GPT_1B.vocab_size * GPT_1B.hidden_size  # a lookup: no FLOPs
    assert training_flops_per_token(GPT_1B) == pytest.approx(6 * (n - embedding) + attention, rel=0.01)


def test_moe_counts_only_the_active_experts():
    dense = training_flops_per_token(GPT_1B)
    moe = dataclasses.replace(GPT_1B, moe=MoEConfig(num_experts=8, top_k=2))
    mlp = 3 * 2 * GPT_1B.hidden_size * GPT_1B.ffn_size * 3 * GPT_1B.num_layers  # fwd+bwd, one expert
    assert training_flops_per_token(moe) == pytest.approx(dense + mlp)


def test_mfu_on_a_known_gpu_and_none_elsewhere():
    tokens_per_second = 989e12 / training_flops_per_token(GPT_1B) / 2
    assert mfu(tokens_per_second, GPT_1B, "NVIDIA H100 80GB HBM3") == pytest.approx(0.5)
    assert mfu(1000.0, GPT_1B, "cpu") is None
    assert peak_flops("NVIDIA H200") == 989e12

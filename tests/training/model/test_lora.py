"""LoRA on a real megatron-core GPTModel: step 0 is the base model, only adapters train, merging keeps the outputs."""

from __future__ import annotations

import pytest
import torch

from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, ParallelConfig
from nemotron.training.model.lora import LoraError, LoraSettings, attach_lora, is_adapter_key, merge_lora

MODEL = ModelConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    vocab_size=256,
    seq_length=16,
    make_vocab_size_divisible_by=128,
)


def logits(model, tokens):
    model.eval()
    with torch.no_grad():
        return model(tokens, torch.arange(tokens.shape[1])[None].expand_as(tokens), None)


@pytest.fixture
def model_and_tokens(dist):
    torch.manual_seed(0)
    model = build_model(MODEL, ParallelConfig(), "cpu")
    return model, torch.randint(0, 250, (2, 16))


def test_adapters_start_as_the_base_model_and_only_they_train(model_and_tokens):
    model, tokens = model_and_tokens
    before = logits(model, tokens)
    base_keys = set(model.sharded_state_dict())
    assert attach_lora(model, LoraSettings(rank=4, alpha=8)) == 2 * 4  # 4 targets in each of 2 layers
    assert torch.equal(logits(model, tokens), before)  # B = 0
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.endswith(("lora_a", "lora_b")) for name in trainable)
    keys = set(model.sharded_state_dict())
    assert base_keys <= keys  # a base checkpoint still loads
    assert {k for k in keys - base_keys} == {k for k in keys if is_adapter_key(k)}
    assert "decoder.layers.0.self_attention.linear_qkv.lora_a" in keys


def test_a_trained_adapter_changes_the_output_and_merging_keeps_it(model_and_tokens):
    model, tokens = model_and_tokens
    base = logits(model, tokens)
    attach_lora(model, LoraSettings(rank=4, alpha=8, target_modules=("linear_qkv", "linear_fc2")))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("lora_b"):
                parameter.normal_(0, 0.05)
    adapted = logits(model, tokens)
    assert not torch.allclose(adapted, base, atol=1e-3)
    assert merge_lora(model) == 4
    assert not any(is_adapter_key(k) for k in model.state_dict())
    torch.testing.assert_close(logits(model, tokens), adapted, rtol=1e-4, atol=1e-4)


def test_gradients_reach_the_adapters(model_and_tokens):
    model, tokens = model_and_tokens
    attach_lora(model, LoraSettings(rank=2, alpha=2))
    model.train()
    loss = model(tokens, torch.arange(16)[None].expand_as(tokens), None, labels=tokens).float().mean()
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for name, g in grads.items() if name.endswith("lora_b"))


def test_unknown_targets_are_refused(model_and_tokens):
    model, _ = model_and_tokens
    with pytest.raises(LoraError, match="peft.target_modules must be among"):
        attach_lora(model, LoraSettings(target_modules=("q_proj",)))

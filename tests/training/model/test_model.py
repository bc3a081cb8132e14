"""ModelConfig validation, vocab padding, parameter counts and a real megatron-core GPTModel on the CPU."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nemotron.config.errors import ConfigError
from nemotron.training.distributed.parallel import seed_rngs
from nemotron.training.model.build import build_model, gpt_model, layer_spec, transformer_config
from nemotron.training.model.config import (
    ModelConfig,
    ModelConfigError,
    MoEConfig,
    ParallelConfig,
    padded_vocab_size,
    parameter_count,
    validate,
)

TINY = ModelConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    swiglu=True,
    normalization="RMSNorm",
    position_embedding="rope",
    vocab_size=8100,  # padded to 8192
    make_vocab_size_divisible_by=128,
    seq_length=32,
)
SINGLE = ParallelConfig()


def variant(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


# --- pure configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vocab", "divisible_by", "tp", "padded"),
    [
        (8100, 128, 1, 8192),
        (8192, 128, 1, 8192),
        (8193, 128, 1, 8320),
        (50257, 128, 2, 50432),
        (1, 1, 1, 1),
        (7, 4, 2, 8),
    ],
)
def test_padded_vocab_size(vocab, divisible_by, tp, padded):
    assert padded_vocab_size(vocab, divisible_by, tp) == padded


def test_padded_vocab_size_rejects_non_positive_sizes():
    with pytest.raises(ModelConfigError):
        padded_vocab_size(0, 128, 1)


def test_errors_are_config_errors():
    assert issubclass(ModelConfigError, ConfigError)


def test_a_good_config_validates():
    assert validate(TINY, SINGLE, 1, "cpu") is None
    assert validate(TINY, ParallelConfig(tensor=2, pipeline=2), 8, "cuda") is None
    with pytest.raises(ModelConfigError, match="parallel.tensor"):  # the same split is judged by device
        validate(TINY, ParallelConfig(tensor=2, pipeline=2), 8, "cpu")


BAD_CONFIGS = [
    ("model.num_attention_heads", dict(num_attention_heads=5), SINGLE, 1, "cpu"),
    ("model.num_query_groups", dict(num_query_groups=3), SINGLE, 1, "cpu"),
    ("model.num_layers", dict(num_layers=0), SINGLE, 1, "cpu"),
    ("model.vocab_size", dict(vocab_size=-3), SINGLE, 1, "cpu"),
    ("model.normalization", dict(normalization="BatchNorm"), SINGLE, 1, "cpu"),
    ("model.position_embedding", dict(position_embedding="alibi"), SINGLE, 1, "cpu"),
    ("model.hidden_size", dict(hidden_size=36, num_attention_heads=4, num_query_groups=None), SINGLE, 1, "cpu"),
    ("model.rope_scaling", dict(rope_scaling=0.5), SINGLE, 1, "cpu"),
    ("model.rope_scaling", dict(rope_scaling=8.0, position_embedding="learned_absolute"), SINGLE, 1, "cpu"),
    ("model.rotary_base", dict(rotary_base=0), SINGLE, 1, "cpu"),
    ("model.hidden_dropout", dict(hidden_dropout=1.0), SINGLE, 1, "cpu"),
    ("model.init_method_std", dict(init_method_std=0.0), SINGLE, 1, "cpu"),
    ("model.precision", dict(precision="fp16"), SINGLE, 1, "cuda"),
    ("model.fp8", dict(fp8="e4m3"), SINGLE, 1, "cpu"),
    ("model.moe", dict(moe=MoEConfig(num_experts=4)), SINGLE, 1, "cpu"),
    ("model.moe.top_k", dict(moe=MoEConfig(num_experts=2, top_k=3)), SINGLE, 1, "cuda"),
    ("model.moe.load_balancing", dict(moe=MoEConfig(num_experts=2, load_balancing="sinkhorn2")), SINGLE, 1, "cuda"),
    ("parallel.expert", dict(moe=MoEConfig(num_experts=6)), ParallelConfig(expert=4), 4, "cuda"),
    ("parallel.expert", {}, ParallelConfig(expert=2), 2, "cuda"),
    ("parallel.expert", dict(moe=MoEConfig(num_experts=4)), ParallelConfig(expert=4), 2, "cuda"),
    ("parallel.tensor", {}, ParallelConfig(tensor=2), 2, "cpu"),
    ("parallel.pipeline", {}, ParallelConfig(pipeline=2), 2, "cpu"),
    ("parallel.context", {}, ParallelConfig(context=2), 2, "cpu"),
    ("parallel.tensor", {}, ParallelConfig(tensor=0), 1, "cuda"),
    ("parallel.tensor", dict(num_attention_heads=4, num_query_groups=None), ParallelConfig(tensor=8), 8, "cuda"),
    ("parallel.tensor", dict(num_query_groups=2), ParallelConfig(tensor=4), 4, "cuda"),
    ("parallel", {}, ParallelConfig(tensor=2, pipeline=2), 6, "cuda"),
    ("parallel.data", {}, ParallelConfig(tensor=2, data=3), 4, "cuda"),
    ("parallel.pipeline", dict(num_layers=2), ParallelConfig(pipeline=4), 4, "cuda"),
    ("parallel.pipeline", dict(num_layers=3), ParallelConfig(pipeline=2), 2, "cuda"),
    ("model.seq_length", dict(seq_length=30), ParallelConfig(context=2), 2, "cuda"),
    ("parallel.sequence_parallel", {}, ParallelConfig(sequence_parallel=True), 1, "cuda"),
]


@pytest.mark.parametrize(("key", "changes", "parallel", "world_size", "device"), BAD_CONFIGS)
def test_bad_configs_are_rejected_naming_the_key(key, changes, parallel, world_size, device):
    with pytest.raises(ModelConfigError) as err:
        validate(variant(**changes), parallel, world_size, device)
    assert f"config key '{key}'" in str(err.value)


def test_fp8_without_transformer_engine_is_rejected(monkeypatch):
    monkeypatch.setattr("nemotron.training.model.config.transformer_engine_available", lambda: False)
    with pytest.raises(ModelConfigError, match="config key 'model.fp8'.*Transformer Engine"):
        validate(variant(fp8="hybrid"), SINGLE, 1, "cuda")


def test_unknown_device_is_rejected():
    with pytest.raises(ModelConfigError, match="device 'tpu'"):
        validate(TINY, SINGLE, 1, "tpu")


def test_cpu_transformer_config_is_fp32_cpu_initialised_without_fusions():
    config = transformer_config(TINY, SINGLE, "cpu")
    assert config.params_dtype == torch.float32 and not config.bf16
    assert config.use_cpu_initialization
    assert not (config.bias_activation_fusion or config.bias_dropout_fusion or config.masked_softmax_fusion)
    assert not (config.apply_rope_fusion or config.gradient_accumulation_fusion)
    assert config.num_query_groups == 2 and config.gated_linear_unit and config.normalization == "RMSNorm"


def test_gpu_transformer_config_is_bf16_and_maps_moe():
    moe = MoEConfig(num_experts=4, top_k=2, aux_loss_coeff=0.01, ffn_hidden_size=96)
    config = transformer_config(variant(moe=moe), ParallelConfig(tensor=2, sequence_parallel=True), "cuda:0")
    assert config.bf16 and config.params_dtype == torch.bfloat16 and not config.use_cpu_initialization
    assert config.tensor_model_parallel_size == 2 and config.sequence_parallel
    assert (config.num_moe_experts, config.moe_router_topk, config.moe_ffn_hidden_size) == (4, 2, 96)
    assert config.moe_aux_loss_coeff == 0.01


# --- real megatron-core models --------------------------------------------------------------------


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batch(batch_size: int = 2, seq: int = 16, vocab: int = TINY.vocab_size, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch_size, seq + 1), generator=generator)
    positions = torch.arange(seq).unsqueeze(0).expand(batch_size, -1)
    return tokens[:, :-1].contiguous(), positions, tokens[:, 1:].contiguous()


@pytest.mark.integration
def test_forward_gives_logits_over_the_padded_vocab(dist):
    model = build_model(TINY, SINGLE, "cpu")
    ids, positions, _ = batch()
    logits = model(ids, positions, None)
    assert logits.shape == (2, 16, 8192)  # [batch, seq, padded vocab]: megatron transposes back from [s, b, v]
    assert torch.isfinite(logits).all()


@pytest.mark.integration
def test_loss_and_backward_reach_every_parameter(dist):
    model = build_model(TINY, SINGLE, "cpu")
    ids, positions, labels = batch()
    loss = model(ids, positions, None, labels=labels)
    assert loss.shape == (2, 16)
    # Small initial weights give near-uniform predictions: the loss starts near ln(padded vocab).
    assert abs(loss.mean().item() - math.log(8192)) < 0.5
    loss.mean().backward()
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for name, param in trainable:
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.integration
def test_adamw_overfits_a_fixed_batch(dist):
    model = build_model(TINY, SINGLE, "cpu")
    ids, positions, labels = batch(seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = model(ids, positions, None, labels=labels).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.integration
def test_same_seed_builds_identical_weights_and_another_seed_does_not(dist):
    seed_rngs(7)
    first = build_model(TINY, SINGLE, "cpu").state_dict()
    seed_rngs(7)
    second = build_model(TINY, SINGLE, "cpu").state_dict()
    seed_rngs(8)
    third = build_model(TINY, SINGLE, "cpu").state_dict()
    weights = [k for k, v in first.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert all(torch.equal(first[k], second[k]) for k in weights)
    assert not all(torch.equal(first[k], third[k]) for k in weights)


COUNT_VARIANTS = {
    "tiny-gqa-swiglu-rmsnorm-rope": {},
    "gpt2-like": dict(
        normalization="LayerNorm", position_embedding="learned_absolute", add_bias_linear=True, swiglu=False
    ),
    "mha-qk-norm-rope-scaling": dict(num_query_groups=None, qk_layernorm=True, rope_scaling=8.0),
    "layernorm-qk-norm-default-ffn": dict(normalization="LayerNorm", qk_layernorm=True, ffn_hidden_size=None),
}


@pytest.mark.integration
@pytest.mark.parametrize("changes", COUNT_VARIANTS.values(), ids=COUNT_VARIANTS.keys())
def test_parameter_count_matches_the_built_model(dist, changes):
    config = variant(**changes)
    assert count(build_model(config, SINGLE, "cpu")) == parameter_count(config)


@pytest.mark.integration
def test_tied_embeddings_save_one_vocab_by_hidden_matrix(dist):
    untied = count(build_model(variant(tie_embeddings=False), SINGLE, "cpu"))
    tied = count(build_model(variant(tie_embeddings=True), SINGLE, "cpu"))
    assert untied - tied == 8192 * 64
    assert parameter_count(variant(tie_embeddings=False)) - parameter_count(variant(tie_embeddings=True)) == 8192 * 64
    assert tied == parameter_count(variant(tie_embeddings=True))


@pytest.mark.integration
def test_moe_parameter_count_matches_a_constructed_moe_model(dist):
    # MoE runs on GPU only; here it is only constructed (skipping validation) to check the arithmetic.
    moe = MoEConfig(
        num_experts=4, top_k=2, ffn_hidden_size=32, shared_expert_ffn_hidden_size=48, token_dispatcher="allgather"
    )
    config = variant(moe=moe)
    spec = layer_spec(config, use_transformer_engine=False)
    model = gpt_model(config, transformer_config(config, SINGLE, "cpu"), spec)
    assert count(model) == parameter_count(config)


@pytest.mark.integration
def test_build_model_validates_first(dist, monkeypatch):
    with pytest.raises(ModelConfigError, match="config key 'model.moe'"):
        build_model(variant(moe=MoEConfig(num_experts=4)), SINGLE, "cpu")
    with pytest.raises(ModelConfigError, match="config key 'parallel.tensor'.*init_distributed"):
        build_model(TINY, ParallelConfig(tensor=2), "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ModelConfigError, match="CUDA_VISIBLE_DEVICES"):
        build_model(TINY, SINGLE, "cpu")

"""Megatron GPTModel -> Hugging Face export: logits of the loaded transformers model match megatron's."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from nemotron.config.errors import ConfigError
from nemotron.training.errors import TrainingError
from nemotron.training.export import hf as hf_export
from nemotron.training.export.hf import (
    ExportError,
    check_exportable,
    export_hf,
    hf_config,
    hf_state_dict,
)
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, MoEConfig, ParallelConfig

TOKENIZER_DIR = Path(__file__).resolve().parents[3] / "recipes" / "nano3" / "assets" / "tokenizer-tiny"
SINGLE = ParallelConfig()
TINY = ModelConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=96,
    vocab_size=8100,  # padded to 8192
    seq_length=32,
    norm_epsilon=1e-5,
)


def variant(**changes) -> ModelConfig:
    return dataclasses.replace(TINY, **changes)


# --- pure configuration -------------------------------------------------------------------------


def test_architecture_follows_qk_layernorm():
    assert check_exportable(TINY) == "LlamaForCausalLM"
    assert check_exportable(variant(qk_layernorm=True)) == "Qwen3ForCausalLM"
    assert issubclass(ExportError, TrainingError) and not issubclass(ExportError, ConfigError)


UNSUPPORTED = [
    ("model.moe", dict(moe=MoEConfig(num_experts=4))),
    ("model.normalization", dict(normalization="LayerNorm")),
    ("model.swiglu", dict(swiglu=False)),
    ("model.position_embedding", dict(position_embedding="learned_absolute")),
    ("model.add_bias_linear", dict(add_bias_linear=True)),
]


@pytest.mark.parametrize(("key", "changes"), UNSUPPORTED, ids=[key for key, _ in UNSUPPORTED])
def test_unsupported_settings_are_rejected_naming_the_key(key, changes):
    with pytest.raises(ExportError, match=f"config key '{key}'.*supports"):
        check_exportable(variant(**changes))
    with pytest.raises(ExportError, match=f"config key '{key}'"):
        hf_config(variant(**changes))


def test_config_json_describes_the_unpadded_model():
    config = hf_config(variant(tie_embeddings=True, rotary_base=500000), eod_id=0, bos_id=0, dtype="float32")
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert config["vocab_size"] == 8100 and config["num_key_value_heads"] == 2 and config["head_dim"] == 16
    assert config["intermediate_size"] == 96 and config["max_position_embeddings"] == 32
    assert config["rope_theta"] == 500000.0 and config["rope_scaling"] is None
    assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 500000.0}
    assert config["tie_word_embeddings"] is True and config["eos_token_id"] == 0
    assert config["rms_norm_eps"] == 1e-5 and config["dtype"] == "float32"
    json.dumps(config)


def test_rope_scaling_maps_to_llama3_with_megatrons_fixed_parameters():
    scaling = hf_config(variant(rope_scaling=8.0))["rope_scaling"]
    assert scaling == {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }


@pytest.mark.parametrize("factor", [8.0, 32.0])
def test_rope_scaling_gives_megatrons_inverse_frequencies(factor):
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    # head_dim 128 with base 500000 spans the unscaled, smoothed and fully scaled frequency bands.
    model = ModelConfig(
        num_layers=1,
        hidden_size=1024,
        num_attention_heads=8,
        vocab_size=128,
        seq_length=16384,
        rotary_base=500000,
        rope_scaling=factor,
    )
    megatron = RotaryEmbedding(
        kv_channels=128,
        rotary_percent=1.0,
        rotary_base=500000,
        rope_scaling=True,
        rope_scaling_factor=factor,
        use_cpu_initialization=True,
    ).inv_freq
    hf, _ = ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(**hf_config(model)), torch.device("cpu"))
    plain = RotaryEmbedding(kv_channels=128, rotary_percent=1.0, rotary_base=500000, use_cpu_initialization=True)
    assert not torch.allclose(plain.inv_freq, megatron)  # the scaling does change some frequencies
    torch.testing.assert_close(hf, megatron, rtol=1e-6, atol=0)


def test_bad_dtype_is_rejected():
    with pytest.raises(ExportError, match="'int8'.*bfloat16"):
        hf_config(TINY, dtype="int8")


# --- real megatron-core models --------------------------------------------------------------------


def tiny_model(config: ModelConfig, seed: int = 0) -> torch.nn.Module:
    """A megatron model with every weight re-drawn: norms away from 1 and matrices large enough to matter."""
    model = build_model(config, SINGLE, "cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
            else:
                std = 1.0 if "word_embeddings" in name else 1.0 / math.sqrt(param.shape[1])
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model.eval()


def token_batch(vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 32), generator=torch.Generator().manual_seed(seed))


def megatron_logits(model: torch.nn.Module, tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    positions = torch.arange(tokens.shape[1]).unsqueeze(0).expand_as(tokens)
    with torch.no_grad():
        logits = model(tokens, positions, attention_mask=None)
    assert logits.shape[:2] == tokens.shape  # [batch, seq, padded vocab]
    return logits[..., :vocab]


def hf_logits(out_dir: Path, tokens: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=tokens).logits


EXPORTS = {
    "gqa-untied-padded-vocab": {},
    "mha-tied": dict(num_query_groups=None, tie_embeddings=True),
    "qk-layernorm-qwen3": dict(qk_layernorm=True, tie_embeddings=True),
    "rope-scaling-base-500k": dict(rope_scaling=8.0, rotary_base=500000, num_query_groups=1),
    "rotary-base-1m-eps": dict(rotary_base=1000000, norm_epsilon=1e-6, vocab_size=8192),
}


@pytest.mark.integration
@pytest.mark.parametrize("changes", EXPORTS.values(), ids=EXPORTS.keys())
def test_exported_model_gives_megatrons_logits(dist, tmp_path, changes):
    config = variant(**changes)
    model = tiny_model(config)
    out_dir = export_hf(model, config, tmp_path / "hf", dtype="float32", eod_id=0)
    tokens = token_batch(config.vocab_size)
    expected = megatron_logits(model, tokens, config.vocab_size)
    actual = hf_logits(out_dir, tokens)
    assert actual.shape == expected.shape == (2, 32, config.vocab_size)
    assert expected.std() > 0.5  # the weights give logits far from zero
    assert (actual - expected).abs().max() < 1e-4
    written = json.loads((out_dir / "config.json").read_text())
    assert written["architectures"] == [check_exportable(config)]
    with safe_open(out_dir / "model.safetensors", framework="pt") as f:
        assert ("lm_head.weight" in f.keys()) is not config.tie_embeddings
        assert f.get_tensor("model.embed_tokens.weight").shape == (config.vocab_size, config.hidden_size)


@pytest.mark.integration
def test_a_wrong_mapping_is_caught_by_the_logit_comparison(dist, tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model(TINY)
    out_dir = export_hf(model, TINY, tmp_path / "hf", dtype="float32")
    weights = load_file(out_dir / "model.safetensors")
    prefix = "model.layers.0.mlp."
    weights[f"{prefix}gate_proj.weight"], weights[f"{prefix}up_proj.weight"] = (
        weights[f"{prefix}up_proj.weight"],
        weights[f"{prefix}gate_proj.weight"],
    )
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    tokens = token_batch(TINY.vocab_size)
    assert (hf_logits(out_dir, tokens) - megatron_logits(model, tokens, TINY.vocab_size)).abs().max() > 1e-2


@pytest.mark.integration
def test_rope_scaling_left_out_of_the_config_is_caught_by_the_logit_comparison(dist, tmp_path):
    scaled = variant(rope_scaling=8.0, rotary_base=500000)
    model = tiny_model(scaled)
    out_dir = export_hf(model, dataclasses.replace(scaled, rope_scaling=None), tmp_path / "hf", dtype="float32")
    tokens = token_batch(scaled.vocab_size)
    assert (hf_logits(out_dir, tokens) - megatron_logits(model, tokens, scaled.vocab_size)).abs().max() > 1e-3


@pytest.mark.integration
def test_transformer_engine_fused_norm_names_map_the_same(dist):
    config = variant(qk_layernorm=True)
    state = tiny_model(config).state_dict()
    fused = {}
    for key, value in state.items():
        key = key.replace("input_layernorm.weight", "self_attention.linear_qkv.layer_norm_weight")
        fused[key.replace("pre_mlp_layernorm.weight", "mlp.linear_fc1.layer_norm_weight")] = value
    assert fused.keys() != state.keys()
    local, te = hf_state_dict(state, config), hf_state_dict(fused, config)
    assert local.keys() == te.keys()
    assert all(torch.equal(local[name], te[name]) for name in local)


@pytest.mark.integration
def test_state_dict_with_unmapped_or_missing_weights_is_rejected(dist):
    state = tiny_model(TINY).state_dict()
    extra = dict(state, **{"decoder.layers.0.mlp.linear_fc1.bias": torch.zeros(192)})
    with pytest.raises(ExportError, match="does not map: decoder.layers.0.mlp.linear_fc1.bias"):
        hf_state_dict(extra, TINY)
    missing = {k: v for k, v in state.items() if k != "decoder.final_layernorm.weight"}
    with pytest.raises(ExportError, match="no decoder.final_layernorm.weight"):
        hf_state_dict(missing, TINY)
    with pytest.raises(ExportError, match="linear_qkv.weight has shape"):
        hf_state_dict(state, variant(num_query_groups=4))


@pytest.mark.integration
def test_tokenizer_is_copied_and_loads(dist, tmp_path):
    from transformers import AutoTokenizer

    vocab = len(json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())["model"]["vocab"])
    config = variant(vocab_size=vocab)
    source = {"checkpoint": "runs/pretrain/iter_0000100", "step": 100}
    out_dir = export_hf(tiny_model(config), config, tmp_path / "hf", tokenizer_dir=TOKENIZER_DIR, metadata=source)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out_dir / name).read_bytes() == (TOKENIZER_DIR / name).read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    assert len(tokenizer) <= config.vocab_size
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert json.loads((out_dir / "generation_config.json").read_text())["eos_token_id"] == eos
    written = json.loads((out_dir / "config.json").read_text())
    assert (written["eos_token_id"], written["pad_token_id"], written["dtype"]) == (eos, 1, "bfloat16")
    record = json.loads((out_dir / "nemotron_export.json").read_text())
    assert record["metadata"] == source and record["architecture"] == "LlamaForCausalLM"
    with safe_open(out_dir / "model.safetensors", framework="pt") as f:
        assert f.get_tensor("model.norm.weight").dtype == torch.bfloat16


@pytest.mark.integration
def test_a_non_empty_folder_is_kept_and_an_earlier_export_replaced_only_with_overwrite(dist, tmp_path):
    model = tiny_model(TINY)
    out_dir = tmp_path / "hf"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("keep me")
    for overwrite in (False, True):  # not an earlier export: --overwrite does not delete it either
        with pytest.raises(ExportError, match=f"{out_dir} is not empty and is not an earlier export"):
            export_hf(model, TINY, out_dir, overwrite=overwrite)
    assert (out_dir / "notes.txt").read_text() == "keep me"
    (out_dir / "notes.txt").unlink()
    export_hf(model, TINY, out_dir)
    with pytest.raises(ExportError, match=f"{out_dir} holds an earlier export; .*pass --overwrite"):
        export_hf(model, TINY, out_dir)
    export_hf(model, TINY, out_dir, overwrite=True)
    assert (out_dir / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


@pytest.mark.integration
def test_a_failed_export_leaves_nothing_behind(dist, tmp_path, monkeypatch):
    def fail(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(hf_export, "_write_tokenizer", fail)
    with pytest.raises(OSError, match="disk full"):
        export_hf(tiny_model(TINY), TINY, tmp_path / "hf", tokenizer_dir=TOKENIZER_DIR)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_wrapped_models_and_bad_inputs_are_rejected(dist, tmp_path):
    model = tiny_model(TINY)
    wrapper = torch.nn.Module()
    wrapper.module = model
    with pytest.raises(ExportError, match="unwrap"):
        export_hf(wrapper, TINY, tmp_path / "a")
    with pytest.raises(ExportError, match="JSON"):
        export_hf(model, TINY, tmp_path / "b", metadata={"path": Path("x")})
    with pytest.raises(ExportError, match="tokenizer folder"):
        export_hf(model, TINY, tmp_path / "c", tokenizer_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []

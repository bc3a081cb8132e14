"""Hugging Face -> megatron import: the imported model gives transformers' logits, and exports back unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nemotron.artifacts import ArtifactKind, ArtifactNotFoundError, FileRegistry
from nemotron.training.export.hf import split_qkv
from nemotron.training.export.hf_import import (
    HfImportError,
    merge_qkv,
    model_config_from_hf,
    read_hf_config,
    weight_files,
)
from nemotron.training.model.config import ModelConfig

TOKENIZER_DIR = Path(__file__).resolve().parents[3] / "recipes" / "nano3" / "assets" / "tokenizer-tiny"
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def hf_model(arch: str, *, tied: bool, rope_scaling: dict | None = None, kv_heads: int = 2, seed: int = 0):
    """A small random transformers model: GQA, norms away from 1."""
    import transformers

    torch.manual_seed(seed)
    common = dict(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        head_dim=16,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
        initializer_range=0.2,
    )
    rope = {"rope_type": "default", "rope_theta": 500000.0, **(rope_scaling or {})}
    if arch == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common, rope_parameters=rope))
    else:
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**common, rope_parameters=rope))
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.copy_(torch.rand(param.shape) + 0.5)
    return model.float().eval()


def save(model, folder: Path, *, tokenizer: bool = True, **kwargs) -> Path:
    model.save_pretrained(folder, **kwargs)
    if tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy2(TOKENIZER_DIR / name, folder / name)
    return folder


# --- pure mapping ------------------------------------------------------------------------------------------


def test_merge_qkv_inverts_split_qkv():
    model = ModelConfig(
        num_layers=1, hidden_size=64, num_attention_heads=8, num_query_groups=2, vocab_size=8, seq_length=8
    )
    fused = torch.randn((8 + 2 * 2) * 8, 64)
    assert torch.equal(merge_qkv(*split_qkv(fused, model), model), fused)


BASE = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_attention_heads": 4,
    "intermediate_size": 96,
    "num_hidden_layers": 1,
    "vocab_size": 100,
    "max_position_embeddings": 16,
    "rms_norm_eps": 1e-5,
}


def test_config_maps_to_model_config():
    config = {
        **BASE,
        "architectures": ["Qwen3ForCausalLM"],
        "num_key_value_heads": 2,
        "head_dim": 16,
        "num_hidden_layers": 3,
        "vocab_size": 1000,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "rope_parameters": {**LLAMA3_ROPE, "rope_theta": 1000000.0},
    }
    model = model_config_from_hf(config)
    assert (model.num_layers, model.query_groups, model.ffn_size, model.vocab_size) == (3, 2, 96, 1000)
    assert model.qk_layernorm and model.tie_embeddings and model.rope_scaling == 8.0
    assert model.rotary_base == 1000000 and model.norm_epsilon == 1e-6 and model.seq_length == 128
    old_style = {k: v for k, v in config.items() if k != "rope_parameters"} | {"rope_theta": 10000.0}
    assert model_config_from_hf(old_style).rope_scaling is None
    assert model_config_from_hf({**old_style, "rope_scaling": LLAMA3_ROPE}).rope_scaling == 8.0
    assert not model_config_from_hf(BASE).qk_layernorm and model_config_from_hf(BASE).num_query_groups is None


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"architectures": ["MistralForCausalLM"]}, "'MistralForCausalLM'.*supports LlamaForCausalLM and Qwen3"),
        ({"head_dim": 32}, "key 'head_dim' is 32"),
        ({"attention_bias": True}, "key 'attention_bias'"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "rope scaling 'linear'"),
        ({"rms_norm_eps": None}, "key 'rms_norm_eps' is missing"),
    ],
)
def test_unsupported_configs_are_refused_naming_the_key(changes, match):
    with pytest.raises(HfImportError, match=match):
        model_config_from_hf({**BASE, **changes})


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(HfImportError, match="is not a folder"):
        read_hf_config(tmp_path / "absent")
    with pytest.raises(HfImportError, match="config.json is missing"):
        read_hf_config(tmp_path)
    with pytest.raises(HfImportError, match="neither model.safetensors nor model.safetensors.index.json"):
        weight_files(tmp_path)


# --- real models -------------------------------------------------------------------------------------------


def megatron_logits_from_artifact(artifact, tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    from nemotron.training.checkpoint.layout import read_checkpoint_info
    from nemotron.training.checkpoint.store import load_checkpoint
    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.export.from_checkpoint import unsplit_model_config
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig

    info = read_checkpoint_info(artifact.file("checkpoint"))
    config = unsplit_model_config(info)
    init_distributed(ParallelConfig())
    try:
        model = build_model(config, ParallelConfig(), "cpu")
        model.load_state_dict(load_checkpoint(info, {"model": model.sharded_state_dict()})["model"])
        model.eval()
        positions = torch.arange(tokens.shape[1]).unsqueeze(0).expand_as(tokens)
        with torch.no_grad():
            return model(tokens, positions, attention_mask=None)[..., :vocab]
    finally:
        destroy_distributed()


CASES = {
    "llama-untied-gqa": ("llama", False, None, 2),
    "llama-tied-rope-llama3": ("llama", True, LLAMA3_ROPE, 1),
    "qwen3-tied": ("qwen3", True, None, 2),
    "qwen3-untied-mha": ("qwen3", False, None, 4),
}


@pytest.mark.integration
@pytest.mark.parametrize(("arch", "tied", "rope", "kv_heads"), CASES.values(), ids=CASES.keys())
def test_imported_model_gives_transformers_logits_and_exports_back(tmp_path, arch, tied, rope, kv_heads):
    from nemotron.stages.catalog import import_hf_model
    from nemotron.training.export.from_checkpoint import export_checkpoint_hf

    model = hf_model(arch, tied=tied, rope_scaling=rope, kv_heads=kv_heads)
    folder = save(model, tmp_path / "hf", max_shard_size="100KB")  # sharded, with an index
    assert (folder / "model.safetensors.index.json").is_file()
    registry = FileRegistry(tmp_path / "artifacts")
    artifact = import_hf_model(folder, "imported", registry)
    assert artifact.kind == ArtifactKind.MODEL_CHECKPOINT and artifact.ref == "imported:v1"
    assert f"hf:{folder.resolve()}" in artifact.lineage.inputs
    assert (artifact.file("tokenizer") / "tokenizer.json").is_file()

    tokens = torch.randint(0, 1000, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(input_ids=tokens).logits
    actual = megatron_logits_from_artifact(artifact, tokens, 1000)
    assert expected.std() > 0.5
    assert (actual - expected).abs().max() < 1e-4

    out = export_checkpoint_hf("imported:latest", tmp_path / "back", registry, dtype="float32")
    original: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        original.update(load_file(path))
    exported = load_file(out / "model.safetensors")
    if tied:
        original.pop("lm_head.weight", None)
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[name], original[name]) for name in original)
    assert (out / "tokenizer.json").read_bytes() == (TOKENIZER_DIR / "tokenizer.json").read_bytes()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [model.config.architectures[0]]


@pytest.mark.integration
def test_missing_and_mismatched_weights_are_refused(tmp_path):
    from safetensors.torch import save_file

    from nemotron.stages.catalog import import_hf_model

    folder = save(hf_model("llama", tied=False), tmp_path / "hf", tokenizer=False)
    weights = load_file(folder / "model.safetensors")
    registry = FileRegistry(tmp_path / "artifacts")
    short = {k: v for k, v in weights.items() if k != "model.layers.1.mlp.up_proj.weight"}
    save_file(short, str(folder / "model.safetensors"))
    with pytest.raises(HfImportError, match="has no tensor model.layers.1.mlp.up_proj.weight"):
        import_hf_model(folder, "bad", registry)
    save_file({**weights, "model.norm.weight": torch.ones(32)}, str(folder / "model.safetensors"))
    with pytest.raises(HfImportError, match=r"model.norm.weight has shape \(32,\) but config.json implies \(64,\)"):
        import_hf_model(folder, "bad", registry)
    (folder / "model.safetensors").unlink()
    with pytest.raises(HfImportError, match="neither model.safetensors"):
        import_hf_model(folder, "bad", registry)
    with pytest.raises(ArtifactNotFoundError):
        registry.resolve("bad")  # nothing was published


@pytest.mark.integration
def test_cli_imports_and_refuses_an_unsupported_architecture(run_cli, tmp_path):
    folder = save(hf_model("qwen3", tied=True), tmp_path / "hf")
    done = run_cli("nano3", "model", "import", "hf", str(folder), "--name", "qwen-tiny")
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout and "qwen-tiny:v1" in done.stdout
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(config))
    done = run_cli("nano3", "model", "import", "hf", str(folder), "--name", "qwen-tiny")
    assert done.returncode != 0
    assert "'GPT2LMHeadModel'" in done.stderr and "supports LlamaForCausalLM and Qwen3ForCausalLM" in done.stderr
    assert "Traceback" not in done.stderr

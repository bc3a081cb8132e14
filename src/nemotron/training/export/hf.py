"""Exports a megatron-core GPTModel (TP=1, PP=1) as a Hugging Face Llama or Qwen3 model folder."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from nemotron.storage_errors import storage_error
from nemotron.training.errors import TrainingError
from nemotron.training.model.config import ModelConfig

LLAMA = "LlamaForCausalLM"
QWEN3 = "Qwen3ForCausalLM"
MODEL_TYPES = {LLAMA: "llama", QWEN3: "qwen3"}
SUPPORTED = (
    f"the export supports dense decoders with SwiGLU, RMSNorm, RoPE and no linear biases "
    f"({LLAMA}, or {QWEN3} with model.qk_layernorm)"
)
# megatron-core 0.16.1 GPTModel passes only `rope_scaling_factor` to RotaryEmbedding._apply_scaling
# (models/common/embeddings/rotary_pos_embedding.py), so these defaults of that method are always in force.
MEGATRON_LLAMA3_ROPE = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
)
WEIGHTS_FILE = "model.safetensors"
OUT_SETTING = "OUT"  # the export folder: the CLI's OUT argument
METADATA_FILE = "nemotron_export.json"


class ExportError(TrainingError):
    """The model, its state or the output folder cannot be exported; the message names the setting and the fix."""


# --- architecture and config.json -----------------------------------------------------------------


def check_exportable(model: ModelConfig) -> str:
    """The Hugging Face architecture for this model; ExportError for the first setting it cannot express."""
    unsupported = [
        ("model.moe", model.moe is not None, "is set (mixture-of-experts)"),
        ("model.normalization", model.normalization != "RMSNorm", f"is {model.normalization!r}"),
        ("model.swiglu", not model.swiglu, "is false (GeLU MLP)"),
        ("model.position_embedding", model.position_embedding != "rope", f"is {model.position_embedding!r}"),
        ("model.add_bias_linear", model.add_bias_linear, "is true (linear biases)"),
    ]
    for key, bad, problem in unsupported:
        if bad:
            raise ExportError(f"cannot export to Hugging Face: config key '{key}' {problem}; {SUPPORTED}")
    return QWEN3 if model.qk_layernorm else LLAMA


def rope_scaling(model: ModelConfig) -> dict[str, object] | None:
    """The transformers `rope_scaling` dict equivalent to megatron's Llama-3 scaling, or None without it."""
    if model.rope_scaling is None:
        return None
    return {"rope_type": "llama3", "factor": float(model.rope_scaling), **MEGATRON_LLAMA3_ROPE}


def hf_config(
    model: ModelConfig,
    *,
    eod_id: int | None = None,
    bos_id: int | None = None,
    pad_id: int | None = None,
    dtype: str = "bfloat16",
) -> dict[str, object]:
    """The config.json content; eos_token_id is the end-of-document id."""
    architecture = check_exportable(model)
    _check_dtype(dtype)
    scaling = rope_scaling(model)
    config: dict[str, object] = {
        "architectures": [architecture],
        "model_type": MODEL_TYPES[architecture],
        "vocab_size": model.vocab_size,
        "hidden_size": model.hidden_size,
        "intermediate_size": model.ffn_size,
        "num_hidden_layers": model.num_layers,
        "num_attention_heads": model.num_attention_heads,
        "num_key_value_heads": model.query_groups,
        "head_dim": model.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": model.seq_length,
        "initializer_range": model.init_method_std,
        "rms_norm_eps": model.norm_epsilon,
        "tie_word_embeddings": model.tie_embeddings,
        "attention_bias": False,
        "attention_dropout": 0.0,
        # transformers 4.x reads rope_theta / rope_scaling, 5.x reads rope_parameters; they agree.
        "rope_theta": float(model.rotary_base),
        "rope_scaling": scaling,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(model.rotary_base), **(scaling or {})},
        "bos_token_id": bos_id,
        "eos_token_id": eod_id,
        "pad_token_id": pad_id,
        "use_cache": True,
        "dtype": dtype,
        "torch_dtype": dtype,
    }
    if architecture == LLAMA:
        config.update(mlp_bias=False, pretraining_tp=1)
    else:
        config.update(use_sliding_window=False, sliding_window=None, max_window_layers=model.num_layers)
    return config


def generation_config(*, eod_id: int | None, bos_id: int | None, pad_id: int | None) -> dict[str, object]:
    """The generation_config.json content: generation stops at the end-of-document token."""
    ids = {"bos_token_id": bos_id, "eos_token_id": eod_id, "pad_token_id": pad_id}
    return {key: value for key, value in ids.items() if value is not None}


def _check_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ExportError(f"export dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


# --- weights -----------------------------------------------------------------------------------------


class _State:
    """The megatron tensors still to be mapped; each is taken once, leftovers are an error."""

    def __init__(self, state: Mapping[str, object]) -> None:
        self.pending = {
            key: value
            for key, value in state.items()
            if not key.endswith("_extra_state") and isinstance(value, torch.Tensor)
        }

    def take(self, *names: str) -> torch.Tensor:
        """The first of `names` present (alternative spellings of one weight), removed from the pending set."""
        for name in names:
            if name in self.pending:
                return self.pending.pop(name)
        raise ExportError(
            f"the megatron state dict has no {' or '.join(names)}; export needs the full state of a "
            "TP=1, PP=1 GPTModel built from this ModelConfig"
        )

    def drop(self, name: str) -> None:
        self.pending.pop(name, None)

    def check_consumed(self) -> None:
        if self.pending:
            names = ", ".join(sorted(self.pending)[:8])
            raise ExportError(
                f"the megatron state dict has weights the export does not map: {names}; "
                f"is it a TP=1, PP=1 model of this ModelConfig? {SUPPORTED}"
            )


def hf_state_dict(
    megatron_state: Mapping[str, object], model: ModelConfig, *, dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Hugging Face weights (fresh contiguous CPU tensors, in `dtype` if given) from a TP=1/PP=1 GPTModel state."""
    check_exportable(model)
    state = _State(megatron_state)
    out: dict[str, torch.Tensor] = {}
    embedding = state.take("embedding.word_embeddings.weight")
    out["model.embed_tokens.weight"] = _trim_vocab(embedding, model, "embedding.word_embeddings.weight")
    for layer in range(model.num_layers):
        out.update(_layer_weights(state, model, layer))
    out["model.norm.weight"] = state.take("decoder.final_layernorm.weight")
    if model.tie_embeddings:
        state.drop("output_layer.weight")  # megatron may keep a reference to the shared matrix
    else:
        out["lm_head.weight"] = _trim_vocab(state.take("output_layer.weight"), model, "output_layer.weight")
    state.check_consumed()
    return {name: _fresh(tensor, dtype) for name, tensor in out.items()}


def _layer_weights(state: _State, model: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
    src, dst = f"decoder.layers.{layer}.", f"model.layers.{layer}."
    attn, mlp = f"{src}self_attention.", f"{src}mlp."
    q, k, v = split_qkv(state.take(f"{attn}linear_qkv.weight"), model, f"{attn}linear_qkv.weight")
    gate, up = split_fc1(state.take(f"{mlp}linear_fc1.weight"), model, f"{mlp}linear_fc1.weight")
    weights = {
        # The local spec has separate norms; the Transformer Engine spec fuses them into the next linear.
        f"{dst}input_layernorm.weight": state.take(
            f"{src}input_layernorm.weight", f"{attn}linear_qkv.layer_norm_weight"
        ),
        f"{dst}self_attn.q_proj.weight": q,
        f"{dst}self_attn.k_proj.weight": k,
        f"{dst}self_attn.v_proj.weight": v,
        f"{dst}self_attn.o_proj.weight": state.take(f"{attn}linear_proj.weight"),
        f"{dst}post_attention_layernorm.weight": state.take(
            f"{src}pre_mlp_layernorm.weight", f"{mlp}linear_fc1.layer_norm_weight"
        ),
        f"{dst}mlp.gate_proj.weight": gate,
        f"{dst}mlp.up_proj.weight": up,
        f"{dst}mlp.down_proj.weight": state.take(f"{mlp}linear_fc2.weight"),
    }
    if model.qk_layernorm:
        weights[f"{dst}self_attn.q_norm.weight"] = state.take(f"{attn}q_layernorm.weight")
        weights[f"{dst}self_attn.k_norm.weight"] = state.take(f"{attn}k_layernorm.weight")
    return weights


def split_qkv(
    weight: torch.Tensor, model: ModelConfig, name: str = "linear_qkv.weight"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Megatron's fused QKV rows, grouped per query group as [q heads of the group, k, v], split into q, k, v.

    See SelfAttention.get_query_key_value_tensors: the output is viewed as
    [groups, (heads_per_group + 2) * head_dim] and split into heads_per_group * head_dim, head_dim, head_dim.
    """
    groups, head_dim = model.query_groups, model.head_dim
    per_group = model.num_attention_heads // groups
    _check_shape(weight, ((per_group + 2) * groups * head_dim, model.hidden_size), name)
    grouped = weight.reshape(groups, per_group + 2, head_dim, model.hidden_size)
    query = grouped[:, :per_group].reshape(model.num_attention_heads * head_dim, model.hidden_size)
    key = grouped[:, per_group].reshape(groups * head_dim, model.hidden_size)
    value = grouped[:, per_group + 1].reshape(groups * head_dim, model.hidden_size)
    return query, key, value


def split_fc1(
    weight: torch.Tensor, model: ModelConfig, name: str = "linear_fc1.weight"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Megatron's fused SwiGLU fc1 = [gate; up] (MLP.glu chunks the output in two: silu(first) * second)."""
    _check_shape(weight, (2 * model.ffn_size, model.hidden_size), name)
    gate, up = torch.chunk(weight, 2, dim=0)
    return gate, up


def _trim_vocab(weight: torch.Tensor, model: ModelConfig, name: str) -> torch.Tensor:
    """Drop megatron's vocabulary padding rows."""
    if weight.dim() != 2 or weight.shape[0] < model.vocab_size or weight.shape[1] != model.hidden_size:
        raise ExportError(
            f"{name} has shape {tuple(weight.shape)} but model.vocab_size={model.vocab_size} and "
            f"model.hidden_size={model.hidden_size} need [>= {model.vocab_size}, {model.hidden_size}] "
            "(a TP=1 model of this ModelConfig)"
        )
    return weight[: model.vocab_size]


def _check_shape(weight: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if tuple(weight.shape) != shape:
        raise ExportError(
            f"{name} has shape {tuple(weight.shape)}, expected {shape} from the ModelConfig; "
            "export needs a TP=1 model built from the same ModelConfig"
        )


def _fresh(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """A contiguous CPU copy owning its storage (safetensors refuses tensors that share memory)."""
    return tensor.detach().to(device="cpu", dtype=dtype, copy=True).contiguous()


# --- the model folder ---------------------------------------------------------------------------------


def export_hf(
    model: torch.nn.Module,
    config: ModelConfig,
    out_dir: Path,
    *,
    tokenizer_dir: Path | None = None,
    dtype: str = "bfloat16",
    metadata: Mapping[str, object] | None = None,
    eod_id: int | None = None,
    bos_id: int | None = None,
    pad_id: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Hugging Face model folder for an unwrapped TP=1/PP=1 megatron GPTModel; returns out_dir.

    Token ids left as None are read from the tokenizer's special tokens (eos = end of document).
    The folder is written next to out_dir and renamed into place, so a failure leaves no partial export.
    """
    out_dir = Path(out_dir)
    architecture = check_exportable(config)
    torch_dtype = _check_dtype(dtype)
    _check_unsplit(model)
    check_out_dir(out_dir, overwrite)
    record = _metadata_record(metadata, config, architecture, dtype)
    ids = _token_ids(tokenizer_dir, eod_id=eod_id, bos_id=bos_id, pad_id=pad_id)
    weights = hf_state_dict(model.state_dict(), config, dtype=torch_dtype)
    staging = out_dir.parent / f".{out_dir.name}.export-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        save_file(weights, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        _write_json(staging / "config.json", hf_config(config, dtype=dtype, **ids))
        _write_json(staging / "generation_config.json", generation_config(**ids))
        _write_json(staging / METADATA_FILE, record)
        if tokenizer_dir is not None:
            _write_tokenizer(Path(tokenizer_dir), staging)
        _move_into_place(staging, out_dir)
    except BaseException as err:
        # judged before the staging folder goes: a full disk is still full here (safetensors hides the errno)
        refused = (
            storage_error(err, "the Hugging Face export", out_dir, OUT_SETTING) if isinstance(err, Exception) else None
        )
        shutil.rmtree(staging, ignore_errors=True)
        if refused is not None:
            raise refused from err
        raise
    return out_dir


def _check_unsplit(model: torch.nn.Module) -> None:
    if hasattr(model, "module"):
        raise ExportError(
            "export_hf needs the bare GPTModel; unwrap it first (DDP / Float16Module keep it in `.module`)"
        )
    mcore = getattr(model, "config", None)
    sizes = {
        "parallel.tensor": getattr(mcore, "tensor_model_parallel_size", 1),
        "parallel.pipeline": getattr(mcore, "pipeline_model_parallel_size", 1),
    }
    for key, size in sizes.items():
        if size != 1:
            raise ExportError(
                f"cannot export a model built with config key '{key}'={size}; export supports TP=1, PP=1 only: "
                "load the checkpoint into a TP=1, PP=1 model first (dist_checkpointing reshards on load)"
            )


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an export folder that holds anything but an earlier export, and an earlier one unless `overwrite`.

    An earlier export is recognised by the marker file this exporter writes (METADATA_FILE) next to
    config.json and the weights, and nothing but the files an export writes: `--overwrite` never
    deletes files of someone else's.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"export folder {out_dir} is a file; choose a folder path")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    others = _not_export_files(out_dir)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ExportError(
            f"export folder {out_dir} is not empty and is not an earlier export (it holds {shown}); "
            "choose a new or empty folder (--overwrite replaces only an earlier export)"
        )
    if not overwrite:
        raise ExportError(
            f"export folder {out_dir} holds an earlier export; choose another folder or pass --overwrite to replace it"
        )


def _not_export_files(out_dir: Path) -> list[str]:
    """Names in out_dir that an export does not write; every name when its marker, config or weights are missing."""
    names = sorted(p.name for p in out_dir.iterdir())
    try:
        marker = _read_json(out_dir / METADATA_FILE)
    except (OSError, ValueError):  # unreadable or not JSON: not our marker
        marker = {}
    ours = str(marker.get("exporter", "")).startswith("nemotron.")
    if not ours or "config.json" not in names or not any(n.endswith(".safetensors") for n in names):
        return names
    written = {WEIGHTS_FILE, "config.json", "generation_config.json", METADATA_FILE, *TOKENIZER_FILES}
    return [n for n in names if n not in written]


def _metadata_record(
    metadata: Mapping[str, object] | None, config: ModelConfig, architecture: str, dtype: str
) -> dict[str, object]:
    record = {
        "exporter": __name__,
        "architecture": architecture,
        "dtype": dtype,
        "vocab_size": config.vocab_size,
        "metadata": dict(metadata or {}),
    }
    try:
        json.dumps(record)
    except (TypeError, ValueError) as err:
        raise ExportError(f"export metadata must be JSON-serialisable: {err}") from err
    return record


def _token_ids(
    tokenizer_dir: Path | None, *, eod_id: int | None, bos_id: int | None, pad_id: int | None
) -> dict[str, int | None]:
    """The explicit ids, with the gaps filled from the tokenizer's eos/bos/pad tokens."""
    if tokenizer_dir is not None:
        tokenizer_dir = Path(tokenizer_dir)
        if not tokenizer_dir.is_dir() or not any((tokenizer_dir / name).is_file() for name in TOKENIZER_FILES):
            raise ExportError(
                f"tokenizer folder {tokenizer_dir} has none of {', '.join(TOKENIZER_FILES)}; "
                "pass a Hugging Face tokenizer folder or tokenizer_dir=None"
            )
        eod_id = eod_id if eod_id is not None else special_token_id(tokenizer_dir, "eos_token")
        bos_id = bos_id if bos_id is not None else special_token_id(tokenizer_dir, "bos_token")
        pad_id = pad_id if pad_id is not None else special_token_id(tokenizer_dir, "pad_token")
    return {"eod_id": eod_id, "bos_id": bos_id, "pad_id": pad_id}


def special_token_id(tokenizer_dir: Path, role: str) -> int | None:
    """The id of a special token (e.g. 'eos_token') named in tokenizer_config.json or special_tokens_map.json."""
    token = None
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        token = token or _read_json(tokenizer_dir / name).get(role)
    if isinstance(token, dict):
        token = token.get("content")
    if not isinstance(token, str):
        return None
    tokenizer = _read_json(tokenizer_dir / "tokenizer.json")
    for added in tokenizer.get("added_tokens", []):
        if added.get("content") == token:
            return int(added["id"])
    vocab = tokenizer.get("model", {}).get("vocab")
    return int(vocab[token]) if isinstance(vocab, dict) and token in vocab else None


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _write_tokenizer(tokenizer_dir: Path, out_dir: Path) -> None:
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, out_dir / name)


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished staging folder to out_dir, replacing an empty or (overwrite) existing folder."""
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.replaced-{uuid.uuid4().hex[:8]}"
    out_dir.rename(old)
    try:
        staging.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old)

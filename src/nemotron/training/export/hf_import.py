"""Reads a Hugging Face Llama or Qwen3 model folder into a ModelConfig and a megatron-core GPTModel state dict."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nemotron.training.errors import TrainingError
from nemotron.training.export.hf import LLAMA, MEGATRON_LLAMA3_ROPE, QWEN3, TOKENIZER_FILES
from nemotron.training.model.config import ModelConfig

if TYPE_CHECKING:
    from nemotron.training.checkpoint.layout import CheckpointInfo

CONFIG_FILE = "config.json"
SINGLE_WEIGHTS = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
SUPPORTED = f"the import supports {LLAMA} and {QWEN3} (SwiGLU, RMSNorm, RoPE, no linear biases)"


class HfImportError(TrainingError):
    """A Hugging Face model folder cannot be imported; the message names the file or key and the fix."""


# --- config.json -> ModelConfig ---------------------------------------------------------------------


def read_hf_config(folder: Path) -> dict:
    """config.json of a model folder; HfImportError for a missing folder or file, or bad JSON."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HfImportError(f"{folder} is not a folder; pass a Hugging Face model folder (from save_pretrained)")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise HfImportError(f"{path} is missing; a Hugging Face model folder has config.json next to its weights")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HfImportError(f"{path} is not readable JSON ({err}); re-save the model with save_pretrained") from None
    if not isinstance(data, dict):
        raise HfImportError(f"{path} is not a JSON object; re-save the model with save_pretrained")
    return data


def architecture_of(config: Mapping[str, object], source: str = CONFIG_FILE) -> str:
    """LLAMA or QWEN3 from config.json's `architectures`; HfImportError naming any other."""
    names = config.get("architectures")
    found = names[0] if isinstance(names, list) and len(names) == 1 else names
    if found not in (LLAMA, QWEN3):
        raise HfImportError(f"{source}: architectures is {found!r}; {SUPPORTED}")
    return str(found)


def model_config_from_hf(config: Mapping[str, Any], source: str = CONFIG_FILE) -> ModelConfig:
    """The ModelConfig of a Llama/Qwen3 config.json (the inverse of hf.hf_config); HfImportError for what it lacks."""
    architecture = architecture_of(config, source)

    def get(key: str, default: object = None) -> Any:
        value = config.get(key, default)
        if value is None:
            raise HfImportError(f"{source}: key '{key}' is missing; re-save the model with save_pretrained")
        return value

    def refuse(key: str, problem: str) -> None:
        raise HfImportError(f"{source}: key '{key}' {problem}; {SUPPORTED}")

    hidden, heads = int(get("hidden_size")), int(get("num_attention_heads"))
    head_dim = int(config.get("head_dim") or hidden // heads)
    if hidden % heads or head_dim != hidden // heads:
        refuse("head_dim", f"is {head_dim} but hidden_size / num_attention_heads is {hidden / heads:g} (megatron's)")
    if config.get("hidden_act", "silu") != "silu":
        refuse("hidden_act", f"is {config.get('hidden_act')!r}, not 'silu'")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            refuse(key, "is true (linear biases)")
    if config.get("use_sliding_window"):
        refuse("use_sliding_window", "is true (sliding-window attention)")
    theta, factor = _rope(config, source)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    return ModelConfig(
        num_layers=int(get("num_hidden_layers")),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_query_groups=kv_heads if kv_heads != heads else None,
        ffn_hidden_size=int(get("intermediate_size")),
        vocab_size=int(get("vocab_size")),
        seq_length=int(get("max_position_embeddings")),
        norm_epsilon=float(get("rms_norm_eps")),
        rotary_base=theta,
        rope_scaling=factor,
        qk_layernorm=architecture == QWEN3,
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        init_method_std=float(config.get("initializer_range") or 0.02),
    )


def _rope(config: Mapping[str, object], source: str) -> tuple[int, float | None]:
    """(rotary_base, Llama-3 scaling factor or None) from rope_parameters (transformers 5) or rope_theta/_scaling."""
    parameters = config.get("rope_parameters")
    params: dict = dict(parameters) if isinstance(parameters, dict) else {}
    scaling = config.get("rope_scaling")
    if not params and isinstance(scaling, dict):
        params = dict(scaling)
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    if not isinstance(theta, (int, float)) or theta <= 0 or float(theta) != math.floor(float(theta)):
        raise HfImportError(f"{source}: rope_theta is {theta!r}; the import needs a positive whole number")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return int(theta), None
    expected = {key: params.get(key) for key in MEGATRON_LLAMA3_ROPE}
    if kind != "llama3" or any(float(expected[k] or 0) != float(v) for k, v in MEGATRON_LLAMA3_ROPE.items()):
        raise HfImportError(
            f"{source}: rope scaling {kind!r} with {expected} is not supported; megatron-core 0.16 applies only "
            f"Llama-3 scaling with {MEGATRON_LLAMA3_ROPE} (or none)"
        )
    factor = float(params.get("factor") or 0)
    if factor <= 1.0:
        raise HfImportError(f"{source}: rope scaling factor is {factor}; megatron needs a factor above 1")
    return int(theta), factor


# --- safetensors -> megatron state dict --------------------------------------------------------------


def weight_files(folder: Path) -> list[Path]:
    """model.safetensors, or the shards model.safetensors.index.json lists; HfImportError when absent."""
    folder = Path(folder)
    if (folder / SINGLE_WEIGHTS).is_file():
        return [folder / SINGLE_WEIGHTS]
    index = folder / INDEX_FILE
    if not index.is_file():
        raise HfImportError(
            f"{folder} has neither {SINGLE_WEIGHTS} nor {INDEX_FILE}; save the model with "
            "save_pretrained(..., safe_serialization=True)"
        )
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise HfImportError(f"{index} has no readable weight_map ({err!r}); re-save the model") from None
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise HfImportError(f"{folder / missing[0]} (listed in {INDEX_FILE}) is missing; download the whole model")
    return [folder / name for name in shards]


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the model folder's safetensors file(s), on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        try:
            weights.update(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError) as err:
            raise HfImportError(f"{path} is not a readable safetensors file ({err}); download it again") from None
    return weights


def merge_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, model: ModelConfig) -> torch.Tensor:
    """Megatron's fused QKV rows from q, k, v: per query group [its q heads, k, v] (the inverse of hf.split_qkv)."""
    groups, head_dim, hidden = model.query_groups, model.head_dim, model.hidden_size
    per_group = model.num_attention_heads // groups
    query = q.reshape(groups, per_group, head_dim, hidden)
    grouped = torch.cat([query, k.reshape(groups, 1, head_dim, hidden), v.reshape(groups, 1, head_dim, hidden)], 1)
    return grouped.reshape((per_group + 2) * groups * head_dim, hidden)


class _Weights:
    """The Hugging Face tensors still to be mapped; each is taken once, leftovers are an error."""

    def __init__(self, weights: Mapping[str, torch.Tensor], source: str) -> None:
        self.pending = dict(weights)
        self.source = source

    def take(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in self.pending:
            raise HfImportError(f"{self.source} has no tensor {name}; the weights do not match config.json")
        tensor = self.pending.pop(name)
        if tuple(tensor.shape) != shape:
            raise HfImportError(
                f"{self.source}: {name} has shape {tuple(tensor.shape)} but config.json implies {shape}; "
                "the weights do not match config.json"
            )
        return tensor

    def drop(self, name: str) -> None:
        self.pending.pop(name, None)

    def check_consumed(self) -> None:
        if self.pending:
            names = ", ".join(sorted(self.pending)[:8])
            raise HfImportError(f"{self.source} has tensors the import does not map: {names}; {SUPPORTED}")


def megatron_state_dict(
    weights: Mapping[str, torch.Tensor],
    model: ModelConfig,
    target: Mapping[str, object],
    source: str = "the safetensors",
) -> dict[str, object]:
    """A state dict for a GPTModel whose own state_dict() is `target` (names, padded vocab, dtypes).

    Norm weights go to the local spec's names or the Transformer Engine spec's fused ones, whichever
    `target` has; the vocabulary is padded with zero rows; `_extra_state` entries are kept from `target`.
    """
    hf = _Weights(weights, source)
    h, ffn, hd = model.hidden_size, model.ffn_size, model.head_dim
    heads, groups = model.num_attention_heads, model.query_groups
    out: dict[str, torch.Tensor] = {
        "embedding.word_embeddings.weight": hf.take("model.embed_tokens.weight", (model.vocab_size, h)),
        "decoder.final_layernorm.weight": hf.take("model.norm.weight", (h,)),
    }
    if model.tie_embeddings:
        hf.drop("lm_head.weight")  # some tied models still store the shared matrix
    else:
        out["output_layer.weight"] = hf.take("lm_head.weight", (model.vocab_size, h))
    for layer in range(model.num_layers):
        src, dst = f"model.layers.{layer}.", f"decoder.layers.{layer}."
        attn, mlp = f"{dst}self_attention.", f"{dst}mlp."
        q = hf.take(f"{src}self_attn.q_proj.weight", (heads * hd, h))
        k = hf.take(f"{src}self_attn.k_proj.weight", (groups * hd, h))
        v = hf.take(f"{src}self_attn.v_proj.weight", (groups * hd, h))
        out[f"{attn}linear_qkv.weight"] = merge_qkv(q, k, v, model)
        out[f"{attn}linear_proj.weight"] = hf.take(f"{src}self_attn.o_proj.weight", (h, heads * hd))
        gate = hf.take(f"{src}mlp.gate_proj.weight", (ffn, h))
        up = hf.take(f"{src}mlp.up_proj.weight", (ffn, h))
        out[f"{mlp}linear_fc1.weight"] = torch.cat([gate, up], 0)
        out[f"{mlp}linear_fc2.weight"] = hf.take(f"{src}mlp.down_proj.weight", (h, ffn))
        local = f"{dst}input_layernorm.weight" in target
        out[f"{dst}input_layernorm.weight" if local else f"{attn}linear_qkv.layer_norm_weight"] = hf.take(
            f"{src}input_layernorm.weight", (h,)
        )
        out[f"{dst}pre_mlp_layernorm.weight" if local else f"{mlp}linear_fc1.layer_norm_weight"] = hf.take(
            f"{src}post_attention_layernorm.weight", (h,)
        )
        if model.qk_layernorm:
            out[f"{attn}q_layernorm.weight"] = hf.take(f"{src}self_attn.q_norm.weight", (hd,))
            out[f"{attn}k_layernorm.weight"] = hf.take(f"{src}self_attn.k_norm.weight", (hd,))
    hf.check_consumed()
    return _fit(out, target)


def _fit(mapped: dict[str, torch.Tensor], target: Mapping[str, object]) -> dict[str, object]:
    """`mapped` in the target's dtypes, vocab rows padded with zeros, plus the target's extra state."""
    state: dict[str, object] = {}
    for name, wanted in target.items():
        if name.endswith("_extra_state") or not isinstance(wanted, torch.Tensor):
            state[name] = wanted
            continue
        if name == "output_layer.weight" and name not in mapped:
            mapped[name] = mapped["embedding.word_embeddings.weight"]  # tied: megatron shares the embedding
        if name not in mapped:
            raise HfImportError(f"the megatron model has {name}, which the import does not fill; {SUPPORTED}")
        tensor = mapped[name].to(dtype=wanted.dtype)
        if tensor.shape != wanted.shape and tensor.dim() == 2 and tensor.shape[1:] == wanted.shape[1:]:
            padding = tensor.new_zeros((wanted.shape[0] - tensor.shape[0], *tensor.shape[1:]))
            tensor = torch.cat([tensor, padding], 0)
        if tensor.shape != wanted.shape:
            raise HfImportError(f"{name}: mapped shape {tuple(tensor.shape)} is not the model's {tuple(wanted.shape)}")
        state[name] = tensor.contiguous()
    unknown = sorted(set(mapped) - set(target))
    if unknown:
        raise HfImportError(f"the megatron model has no {unknown[0]}; {SUPPORTED}")
    return state


def tokenizer_files(folder: Path) -> list[Path]:
    """The tokenizer files the model folder holds (those the export writes)."""
    return [Path(folder) / name for name in TOKENIZER_FILES if (Path(folder) / name).is_file()]


# --- the checkpoint ---------------------------------------------------------------------------------------

IMPORT_STAGE = "model-import"


def import_checkpoint(folder: Path, root: Path, run_name: str) -> tuple[CheckpointInfo, ModelConfig]:
    """Build the model on the CPU, load the folder's weights strictly, save root/iter_0000000; collective-free.

    Everything is checked (config, files, names, shapes) before the checkpoint is written.
    """
    from nemotron.training.checkpoint.store import save_checkpoint
    from nemotron.training.distributed.parallel import destroy_distributed, init_distributed
    from nemotron.training.export.hf import special_token_id
    from nemotron.training.loop.training_loop import TrainState
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig

    folder = Path(folder).resolve()
    model_cfg = model_config_from_hf(read_hf_config(folder), str(folder / CONFIG_FILE))
    weights = read_hf_weights(folder)
    single = ParallelConfig()
    init_distributed(single)
    try:
        model = build_model(dataclasses.replace(model_cfg, precision="fp32"), single, "cpu")
        state = megatron_state_dict(weights, model_cfg, model.state_dict(), f"{folder}'s safetensors")
        model.load_state_dict(state, strict=True)
        tokenizer = None
        if tokenizer_files(folder):
            tokenizer = {
                "name_or_path": str(folder),
                "vocab_size": model_cfg.vocab_size,
                "eod_id": special_token_id(folder, "eos_token"),
                "backend": "huggingface",
            }
        metadata = {
            "run_name": run_name,
            "stage": IMPORT_STAGE,
            "model": dataclasses.asdict(model_cfg),
            "parallelism": {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, "expert": 1},
            "train_state": TrainState().to_dict(),
            "source": str(folder),
            "tokenizer": tokenizer,
        }
        info = save_checkpoint(root, 0, {"model": model.sharded_state_dict()}, metadata, keep_last=None)
    finally:
        destroy_distributed()
    return info, model_cfg

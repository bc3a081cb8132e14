"""The GPT decoder and parallelism settings, their validation, vocab padding and the analytic parameter count."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal, get_args

from nemotron.config.errors import ConfigError
from nemotron.ranges import is_positive_int

Normalization = Literal["RMSNorm", "LayerNorm"]
PositionEmbedding = Literal["rope", "learned_absolute"]
Precision = Literal["auto", "fp32", "bf16"]
Fp8Format = Literal["e4m3", "hybrid"]
LoadBalancing = Literal["aux_loss", "seq_aux_loss", "none"]
TokenDispatcher = Literal["alltoall", "allgather"]
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)
POSITION_EMBEDDINGS: tuple[str, ...] = get_args(PositionEmbedding)
PRECISIONS: tuple[str, ...] = get_args(Precision)
FP8_FORMATS: tuple[str, ...] = get_args(Fp8Format)
LOAD_BALANCING: tuple[str, ...] = get_args(LoadBalancing)
TOKEN_DISPATCHERS: tuple[str, ...] = get_args(TokenDispatcher)
DEVICES = ("cpu", "cuda")


class ModelConfigError(ConfigError):
    """A model or parallelism setting is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class MoEConfig:
    """Mixture-of-experts MLP settings (GPU only)."""

    num_experts: int
    top_k: int = 2
    aux_loss_coeff: float = 1e-2
    ffn_hidden_size: int | None = None  # per expert; None = the model's ffn_hidden_size
    shared_expert_ffn_hidden_size: int | None = None  # None = no shared expert
    load_balancing: LoadBalancing = "aux_loss"
    token_dispatcher: TokenDispatcher = "alltoall"
    grouped_gemm: bool = False  # needs Transformer Engine


@dataclass(frozen=True)
class ModelConfig:
    """A megatron-core GPTModel decoder."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    vocab_size: int  # the tokenizer's vocabulary; the model pads it (see padded_vocab_size)
    seq_length: int
    num_query_groups: int | None = None  # GQA groups; None = multi-head attention
    ffn_hidden_size: int | None = None  # None = 4 * hidden_size
    swiglu: bool = True  # False = GeLU MLP
    normalization: Normalization = "RMSNorm"
    norm_epsilon: float = 1e-5
    position_embedding: PositionEmbedding = "rope"
    rotary_base: int = 10000
    rope_scaling: float | None = None  # Llama-3 style frequency scaling factor
    qk_layernorm: bool = False
    tie_embeddings: bool = False
    add_bias_linear: bool = False
    make_vocab_size_divisible_by: int = 128
    init_method_std: float = 0.02
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    precision: Precision = "auto"  # auto = fp32 on CPU, bf16 on GPU; bf16 on CPU = mixed (fp32 weights)
    fp8: Fp8Format | None = None  # GPU with Transformer Engine only
    moe: MoEConfig | None = None

    @property
    def query_groups(self) -> int:
        """Key/value head groups (the head count for multi-head attention)."""
        return self.num_query_groups if self.num_query_groups is not None else self.num_attention_heads

    @property
    def ffn_size(self) -> int:
        """The dense MLP width."""
        return self.ffn_hidden_size if self.ffn_hidden_size is not None else 4 * self.hidden_size

    @property
    def head_dim(self) -> int:
        """Channels per attention head (megatron's kv_channels)."""
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class ParallelConfig:
    """How the model is split over processes; data parallel is what remains of the world size."""

    tensor: int = 1
    pipeline: int = 1
    context: int = 1
    data: int | None = None  # None = world_size / (tensor * pipeline * context)
    expert: int = 1  # expert parallel (MoE only)
    sequence_parallel: bool = False  # needs tensor > 1

    @property
    def model_parallel(self) -> int:
        """Processes that hold one copy of the model."""
        return self.tensor * self.pipeline * self.context


def padded_vocab_size(vocab_size: int, divisible_by: int, tensor_parallel: int) -> int:
    """The vocabulary rounded up to a multiple of divisible_by * tensor_parallel (megatron's padding)."""
    if vocab_size < 1 or divisible_by < 1 or tensor_parallel < 1:
        raise ModelConfigError(
            f"padded_vocab_size needs positive sizes, got vocab_size={vocab_size}, "
            f"make_vocab_size_divisible_by={divisible_by}, tensor={tensor_parallel}"
        )
    multiple = divisible_by * tensor_parallel
    return -(-vocab_size // multiple) * multiple


def data_parallel_size(parallel: ParallelConfig, world_size: int) -> int:
    """World size divided by the model-parallel size (validated by `validate`)."""
    return world_size // parallel.model_parallel


def device_type(device: object) -> str:
    """'cpu' or 'cuda' from a device name such as 'cuda:1' or a torch.device."""
    kind = str(device).split(":", 1)[0]
    if kind not in DEVICES:
        raise ModelConfigError(f"device {device!r} is not supported; use one of {', '.join(DEVICES)}")
    return kind


def resolved_precision(model: ModelConfig, device: object) -> str:
    """'fp32' or 'bf16': the precision the model computes in on this device (on the CPU bf16 is mixed)."""
    if model.precision == "auto":
        return "fp32" if device_type(device) == "cpu" else "bf16"
    return model.precision


def transformer_engine_available() -> bool:
    """Whether Transformer Engine is importable (checked without importing it)."""
    return importlib.util.find_spec("transformer_engine") is not None


def validate(model: ModelConfig, parallel: ParallelConfig, world_size: int, device: object) -> None:
    """Raise ModelConfigError for the first setting that megatron-core would reject or mis-build."""
    on_cpu = device_type(device) == "cpu"
    _check_shapes(model)
    _check_options(model, on_cpu)
    validate_parallel(parallel, world_size, device)
    _check_model_split(model, parallel)
    if model.moe is not None:
        _check_moe(model.moe, parallel, on_cpu)
    elif parallel.expert != 1:
        _fail("parallel.expert", f"is {parallel.expert} but the model has no MoE", "set it to 1 or configure model.moe")


def _fail(key: str, problem: str, fix: str) -> None:
    raise ModelConfigError(f"config key '{key}' {problem}; {fix}")


def _positive(key: str, value: object) -> None:
    if not is_positive_int(value):
        _fail(key, f"must be a positive integer, got {value!r}", "set it to 1 or more")


def _one_of(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _fail(key, f"is {value!r}", f"use one of {', '.join(allowed)}")


def _check_shapes(model: ModelConfig) -> None:
    for key in ("num_layers", "hidden_size", "num_attention_heads", "vocab_size", "seq_length"):
        _positive(f"model.{key}", getattr(model, key))
    _positive("model.make_vocab_size_divisible_by", model.make_vocab_size_divisible_by)
    if model.num_query_groups is not None:
        _positive("model.num_query_groups", model.num_query_groups)
    if model.ffn_hidden_size is not None:
        _positive("model.ffn_hidden_size", model.ffn_hidden_size)
    if model.hidden_size % model.num_attention_heads:
        _fail(
            "model.num_attention_heads",
            f"({model.num_attention_heads}) does not divide model.hidden_size ({model.hidden_size})",
            "choose a head count that divides the hidden size",
        )
    if model.num_attention_heads % model.query_groups:
        _fail(
            "model.num_query_groups",
            f"({model.query_groups}) does not divide model.num_attention_heads ({model.num_attention_heads})",
            "choose a group count that divides the head count (null = one group per head)",
        )


def _check_options(model: ModelConfig, on_cpu: bool) -> None:
    _one_of("model.normalization", model.normalization, NORMALIZATIONS)
    _one_of("model.position_embedding", model.position_embedding, POSITION_EMBEDDINGS)
    _one_of("model.precision", model.precision, PRECISIONS)
    if model.position_embedding == "rope":
        if model.head_dim % 2:
            _fail(
                "model.hidden_size",
                f"/ model.num_attention_heads gives an odd head size ({model.head_dim}), which rotary "
                "embeddings cannot rotate",
                "choose sizes with an even head size, or model.position_embedding=learned_absolute",
            )
        if model.rotary_base < 1:
            _fail("model.rotary_base", f"must be positive, got {model.rotary_base}", "the usual value is 10000")
    if model.rope_scaling is not None:
        if model.position_embedding != "rope":
            _fail("model.rope_scaling", "applies only to rotary embeddings", "set it to null for learned_absolute")
        if model.rope_scaling <= 1.0:
            _fail("model.rope_scaling", f"must be a factor above 1, got {model.rope_scaling}", "use e.g. 8.0, or null")
    for key in ("attention_dropout", "hidden_dropout"):
        value = getattr(model, key)
        if not 0.0 <= value < 1.0:
            _fail(f"model.{key}", f"must be in [0, 1), got {value}", "use 0.0 for no dropout")
    if model.init_method_std <= 0:
        _fail("model.init_method_std", f"must be positive, got {model.init_method_std}", "the usual value is 0.02")
    if model.norm_epsilon <= 0:
        _fail("model.norm_epsilon", f"must be positive, got {model.norm_epsilon}", "the usual value is 1e-5")
    if model.fp8 is not None:
        _one_of("model.fp8", model.fp8, FP8_FORMATS)
        if on_cpu:
            _fail("model.fp8", "needs a GPU", "set it to null on the CPU")
        if not transformer_engine_available():
            _fail("model.fp8", "needs Transformer Engine, which is not installed", "install it or set it to null")
        if model.precision == "fp32":
            _fail("model.fp8", "runs on top of bf16", "set model.precision to bf16 or auto")


def validate_parallel(parallel: ParallelConfig, world_size: int, device: object) -> None:
    """The model-independent parallelism checks: sizes, the CPU limits and the world-size split."""
    for key in ("tensor", "pipeline", "context", "expert"):
        _positive(f"parallel.{key}", getattr(parallel, key))
    if not isinstance(world_size, int) or world_size < 1:
        raise ModelConfigError(f"world size must be a positive integer, got {world_size!r}")
    if device_type(device) == "cpu":
        for key in ("tensor", "pipeline", "context"):
            if getattr(parallel, key) != 1:
                _fail(
                    f"parallel.{key}",
                    f"is {getattr(parallel, key)} but the CPU supports only 1",
                    "use data parallelism on the CPU",
                )
    if world_size % parallel.model_parallel:
        _fail(
            "parallel",
            f"tensor*pipeline*context = {parallel.tensor}*{parallel.pipeline}*{parallel.context} = "
            f"{parallel.model_parallel} does not divide the world size {world_size}",
            "launch a multiple of that many processes or lower the parallel sizes",
        )
    derived = data_parallel_size(parallel, world_size)
    if parallel.data is not None and parallel.data != derived:
        _fail(
            "parallel.data",
            f"is {parallel.data} but world size {world_size} / {parallel.model_parallel} model-parallel "
            f"processes gives {derived}",
            "leave it null to derive it",
        )
    expert_group = parallel.tensor * parallel.expert * parallel.pipeline
    if world_size % expert_group:
        _fail(
            "parallel.expert",
            f"tensor*expert*pipeline = {expert_group} does not divide the world size {world_size}",
            "lower parallel.expert or launch more processes",
        )
    if parallel.sequence_parallel and parallel.tensor == 1:
        _fail("parallel.sequence_parallel", "needs parallel.tensor > 1", "set it to false")


def _check_model_split(model: ModelConfig, parallel: ParallelConfig) -> None:
    tp, pp, cp = parallel.tensor, parallel.pipeline, parallel.context
    if model.num_attention_heads % tp:
        _fail(
            "parallel.tensor",
            f"({tp}) does not divide model.num_attention_heads ({model.num_attention_heads})",
            "choose a tensor size that divides the head count",
        )
    if model.query_groups % tp:
        _fail(
            "parallel.tensor",
            f"({tp}) does not divide the query groups ({model.query_groups})",
            "choose a tensor size that divides model.num_query_groups",
        )
    if pp > model.num_layers:
        _fail(
            "parallel.pipeline",
            f"({pp}) exceeds model.num_layers ({model.num_layers})",
            "use at most one stage per layer",
        )
    if model.num_layers % pp:
        _fail(
            "parallel.pipeline",
            f"({pp}) does not divide model.num_layers ({model.num_layers})",
            "choose a stage count that splits the layers evenly",
        )
    if cp > 1 and model.seq_length % (2 * cp):
        _fail(
            "model.seq_length",
            f"({model.seq_length}) is not a multiple of 2 * parallel.context ({2 * cp})",
            "context parallelism splits each sequence into 2 * context chunks",
        )
    if parallel.sequence_parallel and model.seq_length % (tp * cp):
        _fail(
            "model.seq_length",
            f"({model.seq_length}) is not a multiple of parallel.tensor * parallel.context ({tp * cp})",
            "sequence parallelism splits each sequence over the tensor ranks",
        )


def _check_moe(moe: MoEConfig, parallel: ParallelConfig, on_cpu: bool) -> None:
    if on_cpu:
        _fail("model.moe", "is set but mixture-of-experts runs on GPU only", "set model.moe to null for CPU runs")
    _positive("model.moe.num_experts", moe.num_experts)
    _positive("model.moe.top_k", moe.top_k)
    if moe.top_k > moe.num_experts:
        _fail("model.moe.top_k", f"({moe.top_k}) exceeds model.moe.num_experts ({moe.num_experts})", "lower it")
    for key in ("ffn_hidden_size", "shared_expert_ffn_hidden_size"):
        if getattr(moe, key) is not None:
            _positive(f"model.moe.{key}", getattr(moe, key))
    if moe.aux_loss_coeff < 0:
        _fail("model.moe.aux_loss_coeff", f"must be >= 0, got {moe.aux_loss_coeff}", "the usual value is 1e-2")
    _one_of("model.moe.load_balancing", moe.load_balancing, LOAD_BALANCING)
    _one_of("model.moe.token_dispatcher", moe.token_dispatcher, TOKEN_DISPATCHERS)
    if moe.grouped_gemm and not transformer_engine_available():
        _fail("model.moe.grouped_gemm", "needs Transformer Engine, which is not installed", "install it or use false")
    if moe.num_experts % parallel.expert:
        _fail(
            "parallel.expert",
            f"({parallel.expert}) does not divide model.moe.num_experts ({moe.num_experts})",
            "choose an expert size that divides the expert count",
        )


def parameter_count(model: ModelConfig, *, tensor_parallel: int = 1) -> int:
    """Trainable parameters of the whole model as megatron-core builds it (tied weights counted once)."""
    h = model.hidden_size
    vocab = padded_vocab_size(model.vocab_size, model.make_vocab_size_divisible_by, tensor_parallel)
    norm = h if model.normalization == "RMSNorm" else 2 * h
    head_norm = model.head_dim if model.normalization == "RMSNorm" else 2 * model.head_dim
    bias = 1 if model.add_bias_linear else 0

    qkv_out = (model.num_attention_heads + 2 * model.query_groups) * model.head_dim
    attention = h * qkv_out + bias * qkv_out + h * h + bias * h
    if model.qk_layernorm:
        attention += 2 * head_norm
    mlp = _mlp_params(h, model.ffn_size, model.swiglu, bias)
    if model.moe is not None:
        expert_ffn = model.moe.ffn_hidden_size or model.ffn_size
        mlp = model.moe.num_experts * h  # router
        mlp += model.moe.num_experts * _mlp_params(h, expert_ffn, model.swiglu, bias)
        if model.moe.shared_expert_ffn_hidden_size:
            mlp += _mlp_params(h, model.moe.shared_expert_ffn_hidden_size, model.swiglu, bias)
    layer = 2 * norm + attention + mlp

    embeddings = vocab * h
    if model.position_embedding == "learned_absolute":
        embeddings += model.seq_length * h
    output = 0 if model.tie_embeddings else vocab * h
    return embeddings + model.num_layers * layer + norm + output


def _mlp_params(hidden: int, ffn: int, swiglu: bool, bias: int) -> int:
    fc1_out = 2 * ffn if swiglu else ffn
    return hidden * fc1_out + bias * fc1_out + ffn * hidden + bias * hidden

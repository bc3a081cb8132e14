"""Builds a megatron-core GPTModel from a ModelConfig: the TransformerConfig, the layer spec and the device settings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import (
    get_gpt_layer_local_spec,
    get_gpt_layer_with_transformer_engine_spec,
)
from megatron.core.transformer import TransformerConfig
from megatron.core.transformer.spec_utils import ModuleSpec

from nemotron.training.cpu_compat import enable_cpu_compat
from nemotron.training.model.config import (
    ModelConfig,
    ModelConfigError,
    ParallelConfig,
    device_type,
    padded_vocab_size,
    transformer_engine_available,
    validate,
)
from nemotron.training.model.precision import autocast_forward, weights_dtype


def uses_transformer_engine(device: object) -> bool:
    """Transformer Engine layers on a GPU where it is importable; megatron's local layers otherwise."""
    return device_type(device) == "cuda" and transformer_engine_available()


def transformer_config(model: ModelConfig, parallel: ParallelConfig, device: object) -> TransformerConfig:
    """Map the model and parallel settings onto megatron-core's TransformerConfig for this device.

    On the CPU: weights initialised on the CPU, fp32 (model.precision bf16 computes under autocast, see
    model/precision.py), every fusion off (they need CUDA kernels).
    On a GPU: bf16 unless model.precision says fp32, weights initialised on the device, the TorchScript
    bias/activation and bias/dropout/add fusions on, RoPE fusion only with Transformer Engine.
    Gradient-accumulation fusion stays off: it needs the main_grad buffers of megatron's DDP wrapper.
    """
    on_cpu = device_type(device) == "cpu"
    dtype = weights_dtype(model, device)  # bf16 on the CPU is mixed: fp32 weights under autocast
    fields: dict[str, object] = dict(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.query_groups,
        kv_channels=model.head_dim,
        ffn_hidden_size=model.ffn_size,
        gated_linear_unit=model.swiglu,
        activation_func=F.silu if model.swiglu else F.gelu,
        normalization=model.normalization,
        layernorm_epsilon=model.norm_epsilon,
        qk_layernorm=model.qk_layernorm,
        add_bias_linear=model.add_bias_linear,
        init_method_std=model.init_method_std,
        attention_dropout=model.attention_dropout,
        hidden_dropout=model.hidden_dropout,
        tensor_model_parallel_size=parallel.tensor,
        pipeline_model_parallel_size=parallel.pipeline,
        context_parallel_size=parallel.context,
        expert_model_parallel_size=parallel.expert,
        sequence_parallel=parallel.sequence_parallel,
        params_dtype=dtype,
        pipeline_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        use_cpu_initialization=on_cpu,
        bias_activation_fusion=not on_cpu and (model.swiglu or model.add_bias_linear),
        bias_dropout_fusion=not on_cpu,
        masked_softmax_fusion=False,
        apply_rope_fusion=uses_transformer_engine(device) and model.position_embedding == "rope",
        gradient_accumulation_fusion=False,
        persist_layer_norm=False,
        cuda_graph_scope=[],
    )
    if model.fp8 is not None:
        fields["fp8"] = model.fp8
    if model.moe is not None:
        moe = model.moe
        fields.update(
            num_moe_experts=moe.num_experts,
            moe_router_topk=moe.top_k,
            moe_aux_loss_coeff=moe.aux_loss_coeff,
            moe_ffn_hidden_size=moe.ffn_hidden_size or model.ffn_size,
            moe_shared_expert_intermediate_size=moe.shared_expert_ffn_hidden_size,
            moe_router_load_balancing_type=moe.load_balancing,
            moe_token_dispatcher_type=moe.token_dispatcher,
            moe_grouped_gemm=moe.grouped_gemm,
        )
    return TransformerConfig(**fields)


def layer_spec(model: ModelConfig, *, use_transformer_engine: bool) -> ModuleSpec:
    """The decoder layer spec: Transformer Engine modules, or megatron-core's local (pure PyTorch) ones."""
    num_experts = model.moe.num_experts if model.moe is not None else None
    grouped_gemm = model.moe.grouped_gemm if model.moe is not None else False
    if use_transformer_engine:
        return get_gpt_layer_with_transformer_engine_spec(
            num_experts=num_experts, moe_grouped_gemm=grouped_gemm, qk_layernorm=model.qk_layernorm
        )
    return get_gpt_layer_local_spec(
        num_experts=num_experts,
        moe_grouped_gemm=grouped_gemm,
        qk_layernorm=model.qk_layernorm,
        normalization=model.normalization,
    )


def gpt_model(
    model: ModelConfig,
    config: TransformerConfig,
    spec: ModuleSpec,
    *,
    tensor_parallel: int = 1,
    pre_process: bool = True,
    post_process: bool = True,
) -> GPTModel:
    """Instantiate GPTModel without validation (build_model is the checked entry point)."""
    return GPTModel(
        config=config,
        transformer_layer_spec=spec,
        vocab_size=padded_vocab_size(model.vocab_size, model.make_vocab_size_divisible_by, tensor_parallel),
        max_sequence_length=model.seq_length,
        pre_process=pre_process,
        post_process=post_process,
        parallel_output=True,
        share_embeddings_and_output_weights=model.tie_embeddings,
        position_embedding_type=model.position_embedding,
        rotary_base=model.rotary_base,
        rope_scaling=model.rope_scaling is not None,
        rope_scaling_factor=model.rope_scaling if model.rope_scaling is not None else 8.0,
    )


def build_model(model: ModelConfig, parallel: ParallelConfig, device: object) -> GPTModel:
    """Validate, then build this rank's part of the GPT model (needs init_distributed first).

    Without labels the model returns logits [batch, seq, padded_vocab / tensor]; with labels, the
    per-token cross-entropy [batch, seq]. The model is not wrapped (DDP / mixed-precision wrappers
    belong to the training loop); for mixed bf16 on the CPU its forward runs under autocast.
    """
    if not parallel_state.model_parallel_is_initialized():
        raise ModelConfigError("build_model needs megatron's process groups; call init_distributed(parallel) first")
    groups = {
        "parallel.tensor": (parallel.tensor, parallel_state.get_tensor_model_parallel_world_size()),
        "parallel.pipeline": (parallel.pipeline, parallel_state.get_pipeline_model_parallel_world_size()),
        "parallel.context": (parallel.context, parallel_state.get_context_parallel_world_size()),
    }
    for key, (wanted, actual) in groups.items():
        if wanted != actual:
            raise ModelConfigError(
                f"config key '{key}' is {wanted} but the process groups were built with {actual}; "
                "pass the same ParallelConfig to init_distributed and build_model"
            )
    validate(model, parallel, torch.distributed.get_world_size(), device)
    if device_type(device) == "cpu" and not enable_cpu_compat():
        raise ModelConfigError(
            "building on the CPU of a machine with CUDA is not supported (megatron-core would still place "
            "tensors on the GPU); pass the GPU device, or hide the GPUs with CUDA_VISIBLE_DEVICES="
        )
    config = transformer_config(model, parallel, device)
    spec = layer_spec(model, use_transformer_engine=uses_transformer_engine(device))
    built = gpt_model(
        model,
        config,
        spec,
        tensor_parallel=parallel.tensor,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
    )
    autocast_forward(built, model, device)
    return built

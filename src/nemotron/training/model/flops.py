"""Model FLOPs per token and model FLOPs utilisation (MFU) against the GPU's dense bf16 peak."""

from __future__ import annotations

from nemotron.training.model.config import ModelConfig

# Dense bf16 tensor-core peak (FLOP/s, without sparsity) by GPU name fragment, from the vendors' data sheets.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is lower (756e12)
    "A100": 312e12,
    "L40S": 362e12,
    "B200": 2250e12,
}


def training_flops_per_token(model: ModelConfig) -> float:
    """Forward + backward FLOPs per token (3x the forward's 2 FLOPs per multiply-add), attention included.

    Counts the matrix multiplies: QKV and output projections, the attention scores and values
    over the full (causal masking is not discounted, as in the MFU convention of PaLM) sequence,
    the MLP (3 matrices with SwiGLU, 2 without; top-k experts with MoE) and the output layer.
    """
    h, layers, s = model.hidden_size, model.num_layers, model.seq_length
    kv = model.query_groups * model.head_dim
    attention = 2 * h * (h + 2 * kv) + 2 * h * h + 2 * 2 * s * h
    ffn = model.moe.ffn_hidden_size if model.moe and model.moe.ffn_hidden_size else model.ffn_size
    experts = model.moe.top_k if model.moe else 1
    mlp = experts * (3 if model.swiglu else 2) * 2 * h * ffn
    logits = 2 * h * model.vocab_size
    return 3.0 * (layers * (attention + mlp) + logits)


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a known GPU (by name), else None (MFU is then not reported)."""
    for fragment, flops in PEAK_BF16_FLOPS.items():
        if fragment in device_name.upper():
            return flops
    return None


def mfu(tokens_per_second_per_gpu: float, model: ModelConfig, device_name: str) -> float | None:
    """Achieved model FLOP/s per GPU over its peak, or None for an unknown device or the CPU."""
    peak = peak_flops(device_name)
    if peak is None:
        return None
    return tokens_per_second_per_gpu * training_flops_per_token(model) / peak

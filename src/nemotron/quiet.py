"""Silence known-harmless warnings in job processes (megatron-core's CPU fallback notices)."""

import warnings


def silence_megatron_fallback_warnings() -> None:
    """megatron-core warns at import that it uses torch kernels without Transformer Engine/Apex."""
    warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")
    warnings.filterwarnings("ignore", message="Apex is not installed. Falling back to Torch Norm")
    # torch.distributed.checkpoint's planner warns about the ShardedTensor type megatron's loader uses.
    warnings.filterwarnings("ignore", message="Please use DTensor instead and we are deprecating ShardedTensor")

"""Silence known-harmless warnings in job processes (megatron-core's CPU fallback notices)."""

import warnings


def silence_megatron_fallback_warnings() -> None:
    """megatron-core warns at import that it uses torch kernels without Transformer Engine/Apex."""
    warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")

"""nemotron: a multi-stage LLM training pipeline orchestrator on NeMo-Run and megatron-core."""

__version__ = "0.1.0"

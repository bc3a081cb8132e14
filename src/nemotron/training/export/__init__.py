"""Exports of trained models: Hugging Face folders from megatron models and checkpoints."""

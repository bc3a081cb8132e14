"""Supervised fine-tuning on packed chat data: config, data, runner, LoRA."""

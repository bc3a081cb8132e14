"""The GPT model: its settings and validation, building it on megatron-core, FLOPs, and greedy sampling."""

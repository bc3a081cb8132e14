"""Using trained models: the generation backend interface and its megatron-core KV-cache generator, prompts, answers."""

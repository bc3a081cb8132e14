"""Data preparation: reading sources, tokenizing, and writing Megatron bin/idx data with blends."""

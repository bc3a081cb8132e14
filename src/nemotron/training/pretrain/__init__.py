"""Pretraining: the GPT next-token stage composed from the shared runtime (its config, data adapter and objective)."""

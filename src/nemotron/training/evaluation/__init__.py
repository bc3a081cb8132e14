"""The eval stage: model artifacts measured side by side on held-out data (loss, perplexity, rewards, lm-eval)."""

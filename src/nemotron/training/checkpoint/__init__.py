"""Training checkpoints: the on-disk layout, atomic saves, verification, RNG state and resuming."""

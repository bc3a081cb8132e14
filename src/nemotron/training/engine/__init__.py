"""The engine: model + optimizer stepped through megatron-core's schedule with a stage's forward step and loss."""

"""The megatron-core training runtime every training stage composes: model, optimizer, engine, loop, checkpoints."""

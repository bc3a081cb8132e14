"""Pretraining on megatron-core: model config, model building, process groups and the CPU shim."""

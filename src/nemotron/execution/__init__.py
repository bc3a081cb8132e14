"""Turning a stage job into a running process: locally, or on Slurm through NeMo-Run; tracking it."""

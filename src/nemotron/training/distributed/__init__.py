"""Processes for training: torch.distributed and megatron groups, and stopping cleanly on Slurm signals."""

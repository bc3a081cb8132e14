"""Optimizers, their checkpointable state, and learning-rate schedules."""

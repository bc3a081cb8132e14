"""Training datasets: GPT samples from data artifacts, and the resumable micro-batch order."""

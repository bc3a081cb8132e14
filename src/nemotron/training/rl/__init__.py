"""GRPO reinforcement learning on megatron-core: advantages, policy loss, rollouts and the RL stage's runtime."""

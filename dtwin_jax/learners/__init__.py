"""Learners that train inside the jitted twins: PPO (and, later, the DQN and VDN families)."""

from dtwin_jax.learners.nets import MLP, ActorCritic, masked_categorical
from dtwin_jax.learners.ppo import PPOConfig, RunnerState, compute_gae, make_policy_fn, make_train

__all__ = [
    "MLP",
    "ActorCritic",
    "PPOConfig",
    "RunnerState",
    "compute_gae",
    "make_policy_fn",
    "make_train",
    "masked_categorical",
]

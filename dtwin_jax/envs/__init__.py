"""Environments: the API (base), spaces, the registry and the twins."""

from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv, legal_action
from dtwin_jax.envs.registry import env_class, make, register, registered_envs, unregister
from dtwin_jax.envs.spaces import Box, Discrete, MultiDiscrete, Simplex

__all__ = [
    "AgentObs",
    "Box",
    "Discrete",
    "Environment",
    "MultiAgentEnv",
    "MultiDiscrete",
    "Simplex",
    "env_class",
    "legal_action",
    "make",
    "register",
    "registered_envs",
    "unregister",
]

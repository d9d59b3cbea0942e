"""Environments: the API (base), spaces, the registry and the twins."""

from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv, legal_action
from dtwin_jax.envs.registry import make, register, registered_envs
from dtwin_jax.envs.spaces import Box, Discrete, MultiDiscrete, Simplex

__all__ = [
    "AgentObs",
    "Box",
    "Discrete",
    "Environment",
    "MultiAgentEnv",
    "MultiDiscrete",
    "Simplex",
    "legal_action",
    "make",
    "register",
    "registered_envs",
]

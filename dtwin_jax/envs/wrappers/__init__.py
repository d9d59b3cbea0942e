"""Wrappers around environments."""

from dtwin_jax.envs.wrappers.vector import VecEnv

__all__ = ["VecEnv"]

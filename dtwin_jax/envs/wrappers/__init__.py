"""Wrappers around environments."""

from dtwin_jax.envs.wrappers.checked import CheckedEnv, checked
from dtwin_jax.envs.wrappers.log import LogState, LogWrapper
from dtwin_jax.envs.wrappers.vector import VecEnv, any_in_batch

__all__ = ["CheckedEnv", "LogState", "LogWrapper", "VecEnv", "any_in_batch", "checked"]

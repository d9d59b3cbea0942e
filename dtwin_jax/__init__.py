"""dtwin_jax: digital twins of wireless networks as pure, jitted JAX functions."""

from dtwin_jax.envs.registry import make, registered_envs

__version__ = "0.1.0"
__all__ = ["make", "registered_envs"]

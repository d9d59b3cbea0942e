"""dtwin_jax: digital twins of wireless networks as pure, jitted JAX functions."""

__version__ = "0.1.0"

"""dtwin_jax: digital twins of wireless networks as pure, jitted JAX functions."""

from dtwin_jax.envs.registry import make, registered_envs

__version__ = "0.1.0"
__all__ = ["make", "registered_envs"]


def _register_gymnasium() -> None:
    """Register every env with Gymnasium (``gymnasium.make("dtwin_jax/<id>")``) when
    Gymnasium is installed; without it nothing happens and nothing else is imported."""
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        return
    from dtwin_jax.envs.wrappers.gymnasium import register_envs

    register_envs()


_register_gymnasium()

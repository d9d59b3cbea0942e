"""``slicing-v0``: bandwidth slicing at one BS, packet by packet (see :mod:`.env`).

Modules: ``types`` (params, state, draws, window result), ``traffic`` (packet sizes and
inter-arrivals per slice), ``physics`` (one decision window: draws apart, deterministic
scan), ``env`` (the environment), ``policies`` (baselines).
"""

from dtwin_jax.envs.slicing.env import URLLC_CHOICES, SlicingEnv, split_table, zscore
from dtwin_jax.envs.slicing.types import SlicingParams, SlicingState, SlotDraws, WindowResult

__all__ = [
    "URLLC_CHOICES",
    "SlicingEnv",
    "SlicingParams",
    "SlicingState",
    "SlotDraws",
    "WindowResult",
    "split_table",
    "zscore",
]

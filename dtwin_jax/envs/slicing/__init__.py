"""``slicing-v0``: bandwidth slicing at one BS, packet by packet (see :mod:`.env`).

Modules: ``types`` (params, state, draws, window result), ``traffic`` (packet sizes and
inter-arrivals per slice), ``physics`` (one decision window: draws apart, deterministic
scan), ``draws`` (all randomness of a decision from one key), ``env`` (the environment),
``policies`` (baselines and the exhaustive search for the best fixed split).
"""

from dtwin_jax.envs.slicing.env import URLLC_CHOICES, SlicingEnv, split_table, zscore
from dtwin_jax.envs.slicing.policies import (
    best_fixed_split,
    equal_split,
    equal_split_policy,
    evaluate_actions,
    fixed_split_policy,
    random_policy,
)
from dtwin_jax.envs.slicing.types import SlicingParams, SlicingState, SlotDraws, WindowResult

__all__ = [
    "URLLC_CHOICES",
    "SlicingEnv",
    "SlicingParams",
    "SlicingState",
    "SlotDraws",
    "WindowResult",
    "best_fixed_split",
    "equal_split",
    "equal_split_policy",
    "evaluate_actions",
    "fixed_split_policy",
    "random_policy",
    "split_table",
    "zscore",
]

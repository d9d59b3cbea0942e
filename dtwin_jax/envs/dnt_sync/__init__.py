"""``dnt-sync-v0``: digital network twin synchronisation (see :mod:`.env`).

Modules: ``types`` (params, state, draws, slot result), ``generator`` (deployment, default
users, episode start), ``physics`` (one slot: draws apart, deterministic rest), ``env`` (the
environment), ``policies`` (baselines).
"""

from dtwin_jax.envs.dnt_sync.env import ACTION_FORMS, DntSyncEnv, persistence
from dtwin_jax.envs.dnt_sync.types import DntParams, DntState, SlotDraws, SlotResult

__all__ = [
    "ACTION_FORMS",
    "DntParams",
    "DntState",
    "DntSyncEnv",
    "SlotDraws",
    "SlotResult",
    "persistence",
]

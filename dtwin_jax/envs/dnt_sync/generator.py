"""Deployment, default user behaviour and episode starts of ``dnt-sync-v0``.

- BSs: the paper's three at (-100, 0), (0, 0), (100, 0) m for M = 3; for other M (chosen), M
  BSs evenly spaced on y = 0 with the same 100 m pitch, centred on x = 0.
- Move probabilities: per user a Dirichlet(1, ..., 1) draw over the five moves (stay, +y, -y,
  -x, +x) from a FIXED NumPy seed (chosen: users drift, so the twin's history is informative,
  and every twin built with the defaults sees the same users' habits).
- Episode start: users uniform in the area; the twin starts synchronised, its K history
  states all equal to the initial positions (as if users had rested before slot 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs.dnt_sync.types import DntState
from dtwin_jax.mobility import RandomWalk

BS_PITCH_M = 100.0
MOVE_PROBS_SEED = 20250207
MOVE_DIRICHLET = 1.0


def default_bs_xy(num_bs: int) -> np.ndarray:
    """``[M, 2]`` float32 m: M BSs on y = 0, 100 m apart, centred on x = 0."""
    x = (np.arange(num_bs) - (num_bs - 1) / 2.0) * BS_PITCH_M
    return np.stack([x, np.zeros(num_bs)], axis=-1).astype(np.float32)


def default_move_probs(num_users: int, seed: int = MOVE_PROBS_SEED) -> np.ndarray:
    """``[U, 5]`` float32 move probabilities (rows sum to 1), a seeded Dirichlet draw."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(5, MOVE_DIRICHLET), size=num_users)
    p = p.astype(np.float32)
    return p / p.sum(axis=-1, keepdims=True)


def initial_state(key: jax.Array, walk: RandomWalk, params, history_len: int,
                  num_bs: int) -> DntState:
    """A new episode: users uniform in the area and a synchronised twin (see module docs)."""
    mob = walk.init(key, params.mobility)
    history = jnp.broadcast_to(mob.pos, (history_len, *mob.pos.shape))
    return DntState(
        mobility=mob,
        history=history,
        stale=jnp.zeros(walk.num_users, jnp.int32),
        last_update=jnp.zeros(num_bs, bool),
        since_update=jnp.zeros(num_bs, jnp.int32),
        t=jnp.int32(0),
    )

"""Per-slot schedulers as pure functions with explicit state: round robin, proportional fair.

Both hand out the RBs of one slot (e.g. a 0.5 ms slot of a slicing simulator) and return
``owner[R]`` int32, the user of each RB (-1 = unused), with the next state. Users without
queued data are skipped. Jittable, vmappable, usable as a ``lax.scan`` body over slots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax._checks import check_float, check_int

__all__ = [
    "PFState",
    "RRState",
    "pf_init",
    "proportional_fair",
    "round_robin",
    "rr_init",
]


@struct.dataclass
class RRState:
    """pointer: [] int32, the user that is first in line in the next slot."""

    pointer: jax.Array


@struct.dataclass
class PFState:
    """avg_rate: [U] float32, exponentially weighted average served rate of each user."""

    avg_rate: jax.Array


def rr_init() -> RRState:
    """Round-robin state with the pointer at user 0."""
    return RRState(pointer=jnp.zeros((), jnp.int32))


def round_robin(state: RRState, has_data, num_rbs: int, rbs_used=None):
    """Round robin over the users with data, starting at the pointer.

    RB ``k`` goes to the ``k``-th user with data in cyclic order from ``state.pointer``
    (wrapping around when there are more RBs than such users); the pointer then moves past
    the last user served, so the next slot starts with the one after it.

    Args:
      state: :class:`RRState`.
      has_data: [U] bool, users with queued data.
      num_rbs: static number of RBs per slot (output size).
      rbs_used: optional [] int, RBs actually handed out this slot (<= num_rbs, may be
        traced, e.g. a slice's current share); RBs beyond it stay unused.

    Returns:
      ``(owner[num_rbs] int32, new_state)``.
    """
    num_rbs = check_int("num_rbs", num_rbs, lo=1)
    has_data = jnp.asarray(has_data, bool)
    num_u = has_data.shape[0]
    used = num_rbs if rbs_used is None else jnp.clip(rbs_used, 0, num_rbs)
    users = jnp.arange(num_u, dtype=jnp.int32)
    cyclic = (users - state.pointer) % num_u  # position of each user after the pointer
    order = jnp.argsort(cyclic)  # users in cyclic order
    waiting = has_data[order]
    rank = jnp.cumsum(waiting) - 1  # rank among users with data, in cyclic order
    n = jnp.sum(has_data)
    k = jnp.arange(num_rbs)
    target = k % jnp.maximum(n, 1)
    hit = waiting[None, :] & (rank[None, :] == target[:, None])  # [R, U]
    owner = order[jnp.argmax(hit, axis=1)].astype(jnp.int32)
    owner = jnp.where((n > 0) & (k < used), owner, -1)
    last = order[jnp.argmax(waiting & (rank == (used - 1) % jnp.maximum(n, 1)))]
    moved = (n > 0) & (used > 0)
    pointer = jnp.where(moved, (last + 1) % num_u, state.pointer).astype(jnp.int32)
    return owner, RRState(pointer=pointer)


def pf_init(num_users: int, initial_rate: float = 1.0) -> PFState:
    """PF state with every average rate at ``initial_rate`` (> 0, same unit as the rates)."""
    num_users = check_int("num_users", num_users, lo=1)
    initial_rate = check_float("initial_rate", initial_rate, lo=0.0, lo_open=True)
    return PFState(avg_rate=jnp.full((num_users,), initial_rate, jnp.float32))


def proportional_fair(state: PFState, inst_rate, has_data=None, ewma: float = 0.01):
    """Proportional fair: each RB goes to ``argmax_u inst_rate[u, r] / avg_rate[u]``.

    Args:
      state: :class:`PFState`.
      inst_rate: [U, R] achievable rate of user u on RB r this slot (>= 0).
      has_data: optional [U] bool; users without data get no RB.
      ewma: weight in (0, 1] of this slot in the average,
        ``avg <- (1 - ewma) avg + ewma served`` ([] float or array).

    Returns:
      ``(owner[R] int32, served[U] float32 rate served this slot, new_state)``.
    """
    if isinstance(ewma, (int, float)):  # Python numbers are checked; arrays may be traced
        ewma = check_float("ewma", ewma, lo=0.0, hi=1.0, lo_open=True)
    inst_rate = jnp.maximum(jnp.asarray(inst_rate, jnp.float32), 0.0)
    num_u, num_r = inst_rate.shape
    ok = jnp.ones((num_u,), bool) if has_data is None else jnp.asarray(has_data, bool)
    metric = inst_rate / jnp.maximum(state.avg_rate, 1e-12)[:, None]
    metric = jnp.where(ok[:, None], metric, -jnp.inf)
    owner = jnp.argmax(metric, axis=0).astype(jnp.int32)
    owner = jnp.where(jnp.any(ok), owner, -1)
    onehot = owner[None, :] == jnp.arange(num_u)[:, None]  # [U, R]
    served = jnp.sum(jnp.where(onehot, inst_rate, 0.0), axis=1)
    avg = (1.0 - ewma) * state.avg_rate + ewma * served
    return owner, served, PFState(avg_rate=avg)

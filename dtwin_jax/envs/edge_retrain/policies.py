"""Slot-level baseline policies of ``edge-retrain-v0``.

A policy is ``policy(key, obs, state, params) -> action [U, 2]`` f32 for ONE twin (vmap it
over twins): column 0 the offload fraction, column 1 the compute weight. They read the same
quantities the observation shows (this slot's rates and the association), nothing more.

* :func:`equal_split` - the paper's "equal shares": equal compute shares, half the samples
  offloaded.
* :func:`balanced` - equal shares, the offload fraction that equalises local and offloaded
  time (the best split for equal shares).
* :func:`optimal` - the strongest classical method: the shares that minimise the sum of the
  users' delays when every user then takes its balanced split (convex; KKT solution by
  bisection on the multiplier of each BS), with that split.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax.envs.edge_retrain import physics
from dtwin_jax.envs.edge_retrain.env import EdgeRetrainEnv

#: bisection iterations of :func:`optimal_shares` (relative accuracy ~2^-60 of the bracket)
BISECTION_ITERS = 60


def _action(offload, weight) -> jax.Array:
    return jnp.stack([offload, weight], axis=-1).astype(jnp.float32)


def equal_split(env: EdgeRetrainEnv):
    """Equal shares, ``x = 1/2``."""

    def policy(key, obs, state, params):
        del key, obs, state, params
        return _action(jnp.full(env.num_users, 0.5), jnp.ones(env.num_users))

    return policy


def balanced(env: EdgeRetrainEnv):
    """Equal shares, balanced split."""

    def policy(key, obs, state, params):
        del key, obs
        rate = env.rates(state, params)
        share = physics.compute_shares(jnp.ones(env.num_users), state.assoc, env.num_bs)
        return _action(physics.balanced_fraction(rate, share, params), share)

    return policy


def optimal_shares(rate: jax.Array, assoc: jax.Array, num_bs: int, params) -> jax.Array:
    """``[U]`` shares minimising ``sum_u l_u o_u / (l_u + o_u)`` with ``o_u = T_u + k_u / s_u``
    (balanced split; ``l`` local time, ``T`` upload time, ``k`` compute time on a whole BS),
    subject to the shares of each BS summing to 1.

    Each term is convex and decreasing in ``s``; the KKT conditions give
    ``s_u(mu) = max(0, (l_u sqrt(k_u) mu - k_u) / (l_u + T_u))`` with one ``mu`` per BS such
    that its shares sum to 1, found by bisection (``s`` is increasing in ``mu``).
    """
    local, offload_all = physics.workload_times(rate, jnp.ones_like(rate), params)
    upload = physics.upload_time(params.samples_per_slot, rate, params)
    k = offload_all - upload
    onehot = jax.nn.one_hot(assoc, num_bs, dtype=jnp.float32)  # [U, M]

    def shares(mu_bs):
        mu = onehot @ mu_bs
        return jnp.maximum(0.0, (local * jnp.sqrt(k) * mu - k) / (local + upload))

    # at mu_u = (l + T + k) / (l sqrt(k)) user u alone takes share 1: the bracket's top
    top = (local + upload + k) / (local * jnp.sqrt(k))
    hi = jnp.max(onehot * top[:, None], axis=0) + 1e-6
    lo = jnp.zeros(num_bs)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        over = (onehot * shares(mid)[:, None]).sum(0) > 1.0
        return jnp.where(over, lo, mid), jnp.where(over, mid, hi)

    lo, hi = jax.lax.fori_loop(0, BISECTION_ITERS, bisect, (lo, hi))
    s = shares(hi)
    total = onehot @ (onehot * s[:, None]).sum(0)
    return s / jnp.maximum(total, 1e-30)


def optimal(env: EdgeRetrainEnv):
    """Optimal shares (:func:`optimal_shares`) with the balanced split."""

    def policy(key, obs, state, params):
        del key, obs
        rate = env.rates(state, params)
        share = optimal_shares(rate, state.assoc, env.num_bs, params)
        return _action(physics.balanced_fraction(rate, share, params), share)

    return policy


POLICIES = {"equal_split": equal_split, "balanced": balanced, "optimal": optimal}

"""Baseline policies of ``dnt-sync-v0``.

A policy is ``policy(key, obs, state, params) -> action`` for ONE twin: ``[M]`` int32 in the
flat form, ``[M, U+1]`` int32 in the factored form (``jax.vmap`` it over twins). Each factory
takes the env (for its sizes and action form). Baselines read the true positions from the
state; every action they return is legal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax import _checks
from dtwin_jax.envs.dnt_sync import physics
from dtwin_jax.envs.dnt_sync.env import DntSyncEnv


def encode(env: DntSyncEnv, update: jax.Array, serve: jax.Array) -> jax.Array:
    """Action of ``env``'s form from ``update [M]`` bool and ``serve [M, U]`` bool."""
    if env.action_form == "flat":
        bits = jnp.left_shift(1, jnp.arange(1, env.num_users + 1, dtype=jnp.int32))
        return (update.astype(jnp.int32) + jnp.sum(jnp.where(serve, bits, 0), axis=-1))
    return jnp.concatenate([update[:, None], serve], axis=-1).astype(jnp.int32)


def _coverage_and_distance(state, params):
    dist = physics.distances(state.mobility.pos, params.bs_xy)
    return physics.coverage(dist, params), dist


def random_policy(env: DntSyncEnv):
    """A uniformly random legal action for every BS (uniform over the legal flat indices, or
    independent fair bits per legal factor value)."""
    space = env.action_space()

    def policy(key, obs, state, params):
        keys = jax.random.split(key, env.num_bs)
        return jax.vmap(space.sample)(keys, obs.action_mask)

    return policy


def update_and_serve_all_policy(env: DntSyncEnv):
    """Every BS sends an update and serves every user in its coverage, every slot."""

    def policy(key, obs, state, params):
        cov, _ = _coverage_and_distance(state, params)
        return encode(env, jnp.ones(env.num_bs, bool), cov)

    return policy


def nearest_bs_policy(env: DntSyncEnv, update_period: int = 1):
    """Each user is served only by its nearest covering BS (no overlaps); every BS updates the
    twin on slots ``t`` with ``t % update_period == 0`` (every slot by default)."""
    period = _checks.check_int("update_period", update_period, lo=1)

    def policy(key, obs, state, params):
        cov, dist = _coverage_and_distance(state, params)
        nearest = jnp.argmin(jnp.where(cov, dist, jnp.inf), axis=0)  # [U]
        serve = cov & (jnp.arange(env.num_bs)[:, None] == nearest[None, :])
        update = jnp.full(env.num_bs, state.t % period == 0)
        return encode(env, update, serve)

    return policy

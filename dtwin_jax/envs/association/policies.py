"""Baseline policies of ``association-v0``.

A policy is ``policy(key, obs, state, params) -> action [U]`` (candidate indices) for ONE
twin; ``jax.vmap`` it over a batch. Baselines read the state (SINR, loads); learned policies
read ``obs`` only. The association rules themselves live once, in
:mod:`dtwin_jax.allocation.association`: a policy here asks one of them for a BS per user
among the legal candidates and maps that BS to its candidate index (:func:`target_to_action`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax import _checks
from dtwin_jax.allocation import association as rules
from dtwin_jax.envs.association import physics
from dtwin_jax.envs.association.types import AssociationState
from dtwin_jax.envs.base import AgentObs
from dtwin_jax.radio import link


def target_to_action(state: AssociationState, target_bs: jax.Array) -> jax.Array:
    """Candidate index ``[U]`` of the wanted BS ``target_bs [U]``; where that BS is not a legal
    candidate (or is -1), the legal candidate with the highest SINR (the first legal one)."""
    hit = (state.candidates == target_bs[:, None]) & state.action_mask
    first_legal = jnp.argmax(state.action_mask, axis=-1)
    return jnp.where(hit.any(-1), jnp.argmax(hit, axis=-1), first_legal).astype(jnp.int32)


def legal_bs(state: AssociationState) -> jax.Array:
    """``[U, B]`` bool: the BSs each user may pick now (its legal candidates)."""
    num_bs = state.sinr.shape[-1]
    is_bs = state.candidates[:, :, None] == jnp.arange(num_bs)  # [U, N, B]
    return jnp.any(is_bs & state.action_mask[:, :, None], axis=1)


def max_sinr_policy(env):
    """Serve every user by its highest-SINR legal candidate
    (:func:`~dtwin_jax.allocation.association.max_sinr`)."""
    del env

    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        sinr_db = link.linear_to_db(state.sinr)
        return target_to_action(state, rules.max_sinr(sinr_db, candidates=legal_bs(state)))

    return policy


def rsrp_bias_policy(env, small_cell_bias_db: float = 6.0):
    """Max RSRP with cell range expansion: small cells get ``small_cell_bias_db`` extra (dB;
    a Python number in [-30, 60], or a scalar array, e.g. traced to sweep it in one compile)
    (:func:`~dtwin_jax.allocation.association.max_rsrp`).

    RSRP is read from the full-load SINR: ``P_b = SINR_b (I_tot + N) / (1 + SINR_b)``, so per
    user ``RSRP_dB(b) = 10 log10(SINR_b / (1 + SINR_b)) + const``.
    """
    bias_db = small_cell_bias_db
    if isinstance(bias_db, (int, float)):  # Python numbers are checked; arrays may be traced
        bias_db = _checks.check_float("small_cell_bias_db", bias_db, lo=-30.0, hi=60.0)
    bias = jnp.where(jnp.arange(env.num_bs) < env.num_macro, 0.0, bias_db)

    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        s = state.sinr
        rsrp_rel_db = link.linear_to_db(s / (1.0 + s))
        target = rules.max_rsrp(rsrp_rel_db, bias, candidates=legal_bs(state))
        return target_to_action(state, target)

    return policy


def random_policy(env):
    """A uniformly random legal candidate for every user
    (:func:`~dtwin_jax.allocation.association.random_association`)."""
    del env

    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        return target_to_action(state, rules.random_association(key, legal_bs(state)))

    return policy


def greedy_rate_policy(env):
    """Selfish best response: the legal candidate with the highest rate if the user joined it
    given the current loads (:func:`~.physics.join_rate`, read from the state, so it works with
    either observation); a load-aware heuristic, not a paper baseline."""

    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        cand_sinr = jnp.take_along_axis(state.sinr, state.candidates, axis=-1)
        load = physics.bs_loads(state.assoc, state.active, state.sinr.shape[-1])
        is_cur = state.candidates == state.assoc[:, None]
        rate = physics.join_rate(cand_sinr, load[state.candidates], is_cur, params.bandwidth_hz)
        return jnp.argmax(jnp.where(state.action_mask, rate, -jnp.inf), axis=-1).astype(jnp.int32)

    return policy


def association_policy(association_fn):
    """Wrap a centralised association ``association_fn(sinr [U, B], active [U], params,
    allowed [U, B]) -> bs [U]`` (e.g. the Ye et al. dual of
    :func:`~dtwin_jax.allocation.association.load_balancing_dual`) as a policy in candidate
    index space; ``allowed`` is :func:`legal_bs`, the same candidate set the learner has."""

    def policy(key, obs: AgentObs, state: AssociationState, params) -> jax.Array:
        target = association_fn(state.sinr, state.active, params, legal_bs(state))
        return target_to_action(state, target)

    return policy

"""User association rules: map a per-(user, BS) quantity to one serving BS per user.

Every function returns ``assoc[U]`` int32, the serving BS of each user, and -1 for users
that are inactive or have no allowed BS. Masks: ``user_mask[U]`` (users that exist),
``bs_mask[B]`` (BSs that exist / are on), or a per-pair ``candidates[U, B]``. All functions
are jittable and vmappable (sizes come from the array shapes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dtwin_jax._checks import check_float, check_int

__all__ = [
    "load_balancing_dual",
    "max_rsrp",
    "max_sinr",
    "random_association",
    "sum_log_utility",
]


def _allowed(shape, user_mask, bs_mask, candidates=None):
    num_u, num_b = shape
    ok = jnp.ones(shape, bool)
    if candidates is not None:
        ok = ok & _shaped("candidates", candidates, shape)
    if user_mask is not None:
        ok = ok & _shaped("user_mask", user_mask, (num_u,))[:, None]
    if bs_mask is not None:
        ok = ok & _shaped("bs_mask", bs_mask, (num_b,))[None, :]
    return ok


def _shaped(name, x, shape):
    x = jnp.asarray(x, bool)
    if x.shape != tuple(shape):
        raise ValueError(f"{name} has shape {x.shape}; expected {tuple(shape)}")
    return x


def _matrix(name, x):
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [U, B], got shape {x.shape}")
    return x


def _argmax_allowed(score, allowed):
    """Best allowed BS per user, -1 where none is allowed."""
    best = jnp.argmax(jnp.where(allowed, score, -jnp.inf), axis=1).astype(jnp.int32)
    return jnp.where(jnp.any(allowed, axis=1), best, -1)


def max_sinr(sinr_db, user_mask=None, bs_mask=None, candidates=None):
    """Each user joins the allowed BS of highest SINR ``sinr_db[U, B]`` (dB)."""
    sinr_db = _matrix("sinr_db", sinr_db)
    return _argmax_allowed(sinr_db, _allowed(sinr_db.shape, user_mask, bs_mask, candidates))


def max_rsrp(rsrp_dbm, bias_db=0.0, user_mask=None, bs_mask=None, candidates=None):
    """Max-RSRP with range expansion: argmax over BSs of ``rsrp_dbm[U, B] + bias_db[B]``.

    ``bias_db`` (dB, [] or [B]) is the cell range expansion offset of each BS's tier (e.g.
    0 for macro cells, 6-9 dB for small cells).
    """
    rsrp_dbm = _matrix("rsrp_dbm", rsrp_dbm)
    bias = jnp.broadcast_to(jnp.asarray(bias_db, jnp.float32), rsrp_dbm.shape[1:])
    allowed = _allowed(rsrp_dbm.shape, user_mask, bs_mask, candidates)
    return _argmax_allowed(rsrp_dbm + bias[None, :], allowed)


def random_association(key, candidates):
    """Each user joins a uniformly random BS among its ``candidates[U, B]`` (bool)."""
    candidates = jnp.asarray(candidates, bool)
    if candidates.ndim != 2:
        raise ValueError(f"candidates must have shape [U, B], got shape {candidates.shape}")
    noise = jax.random.uniform(key, candidates.shape)
    return _argmax_allowed(noise, candidates)


def sum_log_utility(rate_bps, assoc, user_mask=None):
    """``sum_u log(c[u, b(u)] / n_b(u))``: log-utility of load-coupled rates (nats).

    ``rate_bps[U, B]`` are peak rates (the whole BS to one user), ``n_b`` the number of
    active users on BS b. Users with ``assoc = -1`` or masked out contribute nothing.
    """
    rate_bps = _matrix("rate_bps", rate_bps)
    num_u, num_b = rate_bps.shape
    served = assoc >= 0
    if user_mask is not None:
        served = served & _shaped("user_mask", user_mask, (num_u,))
    onehot = (assoc[:, None] == jnp.arange(num_b)[None, :]) & served[:, None]
    load = jnp.sum(onehot, axis=0)
    log_c = jnp.log(jnp.maximum(rate_bps, 1e-30))
    per_user = jnp.sum(jnp.where(onehot, log_c - jnp.log(jnp.maximum(load, 1))[None, :], 0.0), 1)
    return jnp.sum(per_user)


def load_balancing_dual(
    rate_bps, user_mask=None, bs_mask=None, num_iters: int = 100, step: float = 0.1
):
    """Load-balancing association of Ye et al. 2013 (IEEE TWC) by dual decomposition.

    Maximises ``sum_u sum_b x_ub log(c_ub / K_b)`` with ``K_b = sum_u x_ub`` (each BS shares
    its resources equally among its users). Relaxing ``K_b`` with multipliers ``mu_b``:
    users pick ``argmax_b log c_ub - mu_b``, BSs pick ``K_b = exp(mu_b - 1)`` (in
    ``[0, #users]``), and ``mu_b <- mu_b - step / sqrt(t + 1) * (K_b - sum_u x_ub)``, for
    ``num_iters`` iterations in a ``lax.scan``. Every iterate is a feasible association
    (each active user on one allowed BS); the one of highest utility
    (:func:`sum_log_utility`) is returned. Iteration 0 has ``mu = 0``, i.e. the max-rate
    association, so the result is never worse than it.

    Args:
      rate_bps: [U, B] peak rate of user u on BS b (bit/s, > 0 where usable).
      user_mask: optional [U] bool, active users.
      bs_mask: optional [B] bool, active BSs.
      num_iters: number of subgradient iterations (static int >= 1).
      step: initial subgradient step size (> 0).

    Returns:
      ``assoc[U]`` int32 (-1 for inactive users or users without an allowed BS).
    """
    num_iters = check_int("num_iters", num_iters, lo=1)
    if isinstance(step, (int, float)):  # Python numbers are checked; arrays may be traced
        step = check_float("step", step, lo=0.0, lo_open=True)
    rate_bps = _matrix("rate_bps", rate_bps)
    num_u, num_b = rate_bps.shape
    allowed = _allowed(rate_bps.shape, user_mask, bs_mask) & (rate_bps > 0)
    active = jnp.any(allowed, axis=1)
    n_active = jnp.maximum(jnp.sum(active), 1).astype(jnp.float32)
    log_c = jnp.log(jnp.maximum(rate_bps, 1e-30))

    def iterate(carry, t):
        mu, best, best_util = carry
        assoc = _argmax_allowed(log_c - mu[None, :], allowed)
        util = sum_log_utility(rate_bps, assoc)
        better = util > best_util
        best = jnp.where(better, assoc, best)
        best_util = jnp.where(better, util, best_util)
        load = jnp.sum(assoc[:, None] == jnp.arange(num_b)[None, :], axis=0)
        k = jnp.clip(jnp.exp(mu - 1.0), 0.0, n_active)
        mu = mu - step / jnp.sqrt(t + 1.0) * (k - load)
        return (mu, best, best_util), None

    init = (jnp.zeros(num_b, jnp.float32), jnp.full(num_u, -1, jnp.int32), jnp.float32(-jnp.inf))
    (_, best, _), _ = lax.scan(iterate, init, jnp.arange(num_iters, dtype=jnp.float32))
    return jnp.where(active, best, -1)

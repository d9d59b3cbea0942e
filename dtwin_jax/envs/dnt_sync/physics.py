"""Physics of one ``dnt-sync-v0`` slot: random draws apart, everything else deterministic.

:func:`draw_slot` makes all the random draws of a slot's physics (fading); :func:`slot` is a
deterministic function of positions, the twin's prediction, the draws and the decisions, so
tests feed identical draws to it and to the NumPy reference. Shapes: M BSs, U users, N RBs.

Channel (P, B, N0 from params; ``d`` floored at ``min_distance``)::

    gain[u, m, r]   = fading[u, m, r] * d(u, m)^-2                 downlink, per slot and RB
    g_up[m, r]      = uplink_fading[m, r] * d(m, cloud)^-2          BS to cloud
    noise           = N0 * B                                        per RB

RBs: :func:`dtwin_jax.allocation.iterative_rb_allocation` (BS 0, 1, ... in turn, max-rate
Hungarian matching of its chosen users to its free RBs, seeing the interference of the BSs
before it; a BS that sends an update first reserves its RB with the best uplink gain). The
update's rate is ``B log2(1 + P max_r g_up[m, r] / noise)`` and it arrives iff
``D / rate <= alpha`` (evaluated as ``rate * alpha >= D``).

Twin: users covered by a BS whose update arrived get their exact position; the others get the
predictor's estimate. ``twin_error = sum_u ||s_u - s_twin_u||^2`` (m^2).

Rewards (eps, rho from params; overlap = users chosen by more than one BS):

    team_reward = -(1 - eps) / U * twin_error + eps * sum_u rate_u    if no overlap
                = rho * (number of overlapping users)                 otherwise
    reward[m]   = -(1 - eps) / U * sum_{u covered by m} user_error[u]
                  + eps * (rate BS m delivers) + rho * (m's chosen users that another BS
                  also chose)                                          (chosen, for IQL)

A user covered by two BSs counts in both BSs' local twin error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax.allocation.rb import iterative_rb_allocation
from dtwin_jax.envs.dnt_sync.types import DntParams, SlotDraws, SlotResult
from dtwin_jax.radio.link import shannon_rate

STALE_CLIP = 20
"""Slots-since counters are clipped here in the observation (then divided by it)."""

RB_FREE = -1
RB_UPDATE = -2
SERVED_NONE = -1
SERVED_SEVERAL = -2


def draw_slot(key: jax.Array, num_users: int, num_bs: int, num_rbs: int) -> SlotDraws:
    """Exp(1) fading of a slot: downlink ``[U, M, N]`` and uplink ``[M, N]`` (one draw)."""
    e = jax.random.exponential(key, (num_users + 1, num_bs, num_rbs), jnp.float32)
    return SlotDraws(fading=e[:num_users], uplink_fading=e[num_users])


def distances(pos: jax.Array, bs_xy: jax.Array) -> jax.Array:
    """``[M, U]`` f32 m: distance of every user ``pos [U, 2]`` to every BS ``bs_xy [M, 2]``."""
    diff = pos[None, :, :] - bs_xy[:, None, :]
    return jnp.sqrt(jnp.sum(diff * diff, axis=-1))


def coverage(dist: jax.Array, params: DntParams) -> jax.Array:
    """``[M, U]`` bool: user within ``coverage_radius`` of the BS (``dist [M, U]``)."""
    return dist <= params.coverage_radius


def channel_gains(dist: jax.Array, draws: SlotDraws, params: DntParams):
    """Downlink ``gain [U, M, N]`` and uplink ``g_up [M, N]`` power gains (see module docs)."""
    inv_d2 = 1.0 / jnp.maximum(dist, params.min_distance) ** 2  # [M, U]
    gain = draws.fading * inv_d2.T[:, :, None]
    d_up = jnp.sqrt(jnp.sum((params.bs_xy - params.cloud_xy) ** 2, axis=-1))
    g_up = draws.uplink_fading / jnp.maximum(d_up, params.min_distance)[:, None] ** 2
    return gain, g_up


# ------------------------------------------------------------------------------- actions
def decode_flat(action: jax.Array, num_users: int) -> tuple[jax.Array, jax.Array]:
    """Flat actions ``[M]`` -> ``update [M]`` bool, ``serve [M, U]`` bool.

    Bit 0 of the index is the update, bit ``1 + u`` serves user u. An index outside
    ``[0, 2^(U+1))`` counts as 0 (no update, nobody served).
    """
    a = action.astype(jnp.int32)
    a = jnp.where((a >= 0) & (a < 2 ** (num_users + 1)), a, 0)
    update = (a & 1) == 1
    bits = jnp.arange(1, num_users + 1, dtype=jnp.int32)
    serve = ((a[:, None] >> bits[None, :]) & 1) == 1
    return update, serve


def decode_factored(action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Factored actions ``[M, U+1]`` (factor 0 update, ``1 + u`` serve u) -> ``update [M]``,
    ``serve [M, U]``. A value outside {0, 1} counts as 0."""
    on = action == 1
    return on[:, 0], on[:, 1:]


def flat_mask(cov: jax.Array) -> jax.Array:
    """``[M, 2^(U+1)]`` bool: False for indices that serve a user outside coverage."""
    num_users = cov.shape[-1]
    weights = jnp.left_shift(1, jnp.arange(num_users, dtype=jnp.int32))
    outside = jnp.sum(jnp.where(cov, 0, weights), axis=-1)  # [M] bit set of users outside
    serve_bits = jnp.arange(2 ** (num_users + 1), dtype=jnp.int32) >> 1
    return (serve_bits[None, :] & outside[:, None]) == 0


def factored_mask(cov: jax.Array) -> jax.Array:
    """``[M, U+1, 2]`` bool: value 1 of serve factor ``1 + u`` is legal iff u is covered."""
    num_bs = cov.shape[0]
    serve_one = jnp.concatenate([jnp.ones((num_bs, 1), bool), cov], axis=-1)
    return jnp.stack([jnp.ones_like(serve_one), serve_one], axis=-1)


# ------------------------------------------------------------------------------- one slot
def slot(pos: jax.Array, prediction: jax.Array, draws: SlotDraws, update: jax.Array,
         serve: jax.Array, params: DntParams) -> SlotResult:
    """Deterministic outcome of a slot (module docstring).

    Args:
        pos: [U, 2] f32 m, true positions in this slot.
        prediction: [U, 2] f32 m, the predictor's estimate from the twin's history.
        draws: this slot's :class:`SlotDraws`.
        update: [M] bool, BSs that send an update.
        serve: [M, U] bool, users each BS chose; users outside its coverage are dropped.
    """
    num_bs, num_users = serve.shape
    dist = distances(pos, params.bs_xy)
    cov = coverage(dist, params)
    serve = serve & cov
    gain, g_up = channel_gains(dist, draws, params)
    noise = params.noise_density * params.bandwidth
    res = iterative_rb_allocation(gain, serve, params.tx_power, noise, params.bandwidth,
                                  reserve_update=update, uplink_gain=g_up)
    update_ok = update & (res.update_rate * params.delay_threshold >= params.update_size)
    link_rate = res.alloc * shannon_rate(params.bandwidth, res.sinr)  # [U, M, N]
    rate_bs = jnp.sum(link_rate, axis=(0, 2))

    exact = jnp.any(cov & update_ok[:, None], axis=0)
    twin = jnp.where(exact[:, None], pos, prediction)
    user_error = jnp.sum((pos - twin) ** 2, axis=-1)
    twin_error = jnp.sum(user_error)

    n_serving = jnp.sum(serve, axis=0)
    overlap = n_serving > 1
    served_by = jnp.where(
        n_serving == 0, SERVED_NONE,
        jnp.where(overlap, SERVED_SEVERAL, jnp.argmax(serve, axis=0))).astype(jnp.int32)
    w_err = (1.0 - params.eps) / num_users
    team = jnp.where(overlap.any(), params.rho * jnp.sum(overlap),
                     -w_err * twin_error + params.eps * jnp.sum(res.rate))
    local_err = jnp.sum(jnp.where(cov, user_error[None, :], 0.0), axis=-1)
    own_overlap = jnp.sum(serve & overlap[None, :], axis=-1)
    reward = -w_err * local_err + params.eps * rate_bs + params.rho * own_overlap

    has_user = jnp.any(res.alloc > 0, axis=0)  # [M, N]
    rb_user = jnp.where(res.reserved, RB_UPDATE,
                        jnp.where(has_user, jnp.argmax(res.alloc, axis=0), RB_FREE))
    return SlotResult(
        serve=serve, update=update, update_ok=update_ok, update_rate=res.update_rate,
        alloc=res.alloc, rb_user=rb_user.astype(jnp.int32), rates=res.rate, rate_bs=rate_bs,
        served_by=served_by, twin=twin, exact=exact, user_error=user_error,
        twin_error=twin_error, reward=reward.astype(jnp.float32),
        team_reward=team.astype(jnp.float32),
    )


# ------------------------------------------------------------------------------- observation
def features(pos: jax.Array, stale: jax.Array, last_update: jax.Array,
             since_update: jax.Array, params: DntParams) -> jax.Array:
    """``[M, 5U + 2 + M]`` f32 observation of every BS (table in the env's docstring)."""
    num_bs = params.bs_xy.shape[0]
    dist = distances(pos, params.bs_xy)
    cov = coverage(dist, params)
    covf = cov.astype(jnp.float32)
    radius = params.coverage_radius
    rel = (pos[None, :, :] - params.bs_xy[:, None, :]) / radius * covf[..., None]
    rel = jnp.clip(rel, -1.0, 1.0)
    log_gain = jnp.log(radius / jnp.maximum(dist, params.min_distance)) / jnp.log(radius)
    log_gain = jnp.clip(log_gain, 0.0, 1.0) * covf
    stale_f = jnp.minimum(stale, STALE_CLIP).astype(jnp.float32) / STALE_CLIP
    since_f = jnp.minimum(since_update, STALE_CLIP).astype(jnp.float32) / STALE_CLIP
    return jnp.concatenate(
        [
            covf,
            rel[..., 0],
            rel[..., 1],
            jnp.broadcast_to(stale_f, covf.shape),
            log_gain,
            last_update.astype(jnp.float32)[:, None],
            since_f[:, None],
            jnp.eye(num_bs, dtype=jnp.float32),
        ],
        axis=-1,
    )

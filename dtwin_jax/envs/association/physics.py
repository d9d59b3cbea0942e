"""Physics and observation of ``association-v0``: received power, full-load SINR, candidates,
features. Pure functions of arrays; B = num_bs, U = max_users, N = num_candidates.

Shadowing is read in one place (:func:`sample_shadow` at reset, :func:`shadow_db` per step),
so the shadowing representation can change without touching the rest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs.base import AgentObs
from dtwin_jax.radio import link, pathloss, periodic_shadowing

RATE_FLOOR_BPS = 1.0e3  # utilities use max(rate, 1 kbps)
FEATURE_LIMIT = 10.0
LOAD_LIMIT = 20.0
_DB_TO_LN = float(np.log(10.0) / 10.0)  # 10^(x/10) = exp(_DB_TO_LN x)
_DB_MAX = 300.0  # dB cap of linear powers, as in dtwin_jax.radio.link
_P_MAX_W = 1e30


# ---------------------------------------------------------------------- shadowing
def sample_shadow(key, params, num_bs: int, tile_cells: int, cell_m: float):
    """A twin's shadowing tile (:mod:`dtwin_jax.radio.periodic_shadowing`), drawn when the twin
    is created (``reset``) and re-placed at every later episode start: ``values [T+1, T+1, B]``
    dB, placed at a random offset and symmetry."""
    k_draw, k_place = jax.random.split(key)
    tile = periodic_shadowing.sample_shadowing_tile(
        k_draw, num_bs, tile_cells, jnp.float32(cell_m), params.shadow_sigma_db,
        params.shadow_dcorr_m,
    )
    return periodic_shadowing.reposition_tile(k_place, tile)


def replace_shadow(key, shadow):
    """The same tile for a new episode: a new random offset and symmetry (a few random
    numbers: the cheap part of an auto-reset)."""
    return periodic_shadowing.reposition_tile(key, shadow)


def shadow_db(shadow, pos: jax.Array) -> jax.Array:
    """Shadowing ``[U, B]`` (dB) of every BS at the users' positions ``pos [U, 2]`` (m)."""
    return periodic_shadowing.tile_shadowing_at(shadow, pos)


def shadow_bytes(num_bs: int, tile_cells: int) -> int:
    """Bytes of one twin's shadowing state (the float32 tile and its placement)."""
    return periodic_shadowing.tile_bytes(tile_cells, num_bs) + 4 * 4 + 3


# ---------------------------------------------------------------------- links
def rx_power_w(pos: jax.Array, shadow, params, num_macro: int) -> jax.Array:
    """Received power (W) ``[U, B]``: tx power - expected pathloss - shadowing.

    The first ``num_macro`` BSs are 38.901 UMa, the others UMi street canyon. The expected
    pathloss (:func:`~dtwin_jax.radio.pathloss.expected_pathloss`) is folded into the linear
    power: since ``PL_NLOS >= PL_LOS`` in 38.901,
    ``P = 10^((P_tx - PL_LOS - X)/10 - 3) (p + (1 - p) 10^(-(PL_NLOS - PL_LOS)/10))``,
    two exponentials per link instead of a log-sum-exp and a power.
    """
    m = num_macro
    h_ut = params.ue_height_m
    d2, d3 = link.pairwise_distances(pos, params.bs_xy, h_ut, params.bs_height_m)
    fc = params.fc_ghz
    parts = []
    for sl, los, nlos, p_los in (
        (slice(0, m), pathloss.uma_los, pathloss.uma_nlos, pathloss.los_probability_uma),
        (slice(m, None), pathloss.umi_los, pathloss.umi_nlos, pathloss.los_probability_umi),
    ):
        h = params.bs_height_m[sl]
        if h.shape[0]:
            parts.append((los(d3[:, sl], fc, h, h_ut), nlos(d3[:, sl], fc, h, h_ut),
                          p_los(d2[:, sl], h_ut)))
    pl_los, pl_nlos, p = (jnp.concatenate(x, axis=-1) for x in zip(*parts, strict=True))
    budget_dbw = jnp.minimum(params.tx_power_dbm - 30.0 - pl_los - shadow_db(shadow, pos),
                             _DB_MAX)
    nlos_rel = jnp.exp(-_DB_TO_LN * jnp.maximum(pl_nlos - pl_los, 0.0))
    gain_rel = p + (1.0 - p) * nlos_rel  # in (0, 1]
    return jnp.clip(jnp.exp(_DB_TO_LN * budget_dbw) * gain_rel, 0.0, _P_MAX_W)


def noise_w(params) -> jax.Array:
    """Thermal noise (W) over the bandwidth, with the UE noise figure."""
    return link.thermal_noise_w(params.bandwidth_hz, params.noise_figure_db)


def sinr(pos: jax.Array, shadow, params, num_macro: int) -> jax.Array:
    """Full-load SINR (linear) ``[U, B]`` of users at ``pos [U, 2]`` (m):
    :func:`~dtwin_jax.radio.link.full_load_sinr` of :func:`rx_power_w` and :func:`noise_w`."""
    return link.full_load_sinr(rx_power_w(pos, shadow, params, num_macro), noise_w(params))


def log_util(rate: jax.Array, params) -> jax.Array:
    """``ln(max(rate, 1 kbps) / rate_ref)``."""
    return jnp.log(jnp.maximum(rate, RATE_FLOOR_BPS) / params.rate_ref_bps)


# ---------------------------------------------------------------------- observation
def top_candidates(sinr_lin: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """The ``n`` largest entries of ``sinr_lin [..., B]`` along its last axis, best first
    (ties: lower index first, as ``lax.top_k``): values ``[..., n]`` and one-hot selections
    ``[..., n, B]``.

    ``n`` rounds of a masked argmax: much faster than ``lax.top_k`` for a small B on CPU.
    """
    b_idx = jnp.arange(sinr_lin.shape[-1])
    vals, sels = [], []
    cur = sinr_lin
    for _ in range(n):
        best = jnp.argmax(cur, axis=-1)
        vals.append(jnp.max(cur, axis=-1))
        sel = b_idx == best[..., None]
        sels.append(sel)
        cur = jnp.where(sel, -jnp.inf, cur)
    return jnp.stack(vals, axis=-1), jnp.stack(sels, axis=-2)


def bs_loads(assoc: jax.Array, active: jax.Array, num_bs: int) -> jax.Array:
    """Active users per BS ``[B]`` (float32) of ``assoc [U]``."""
    on_bs = (assoc[:, None] == jnp.arange(num_bs, dtype=jnp.int32)) & active[:, None]
    return on_bs.sum(0).astype(jnp.float32)


def join_rate(cand_sinr: jax.Array, cand_load: jax.Array, is_cur: jax.Array, bandwidth_hz):
    """Rate (bit/s) ``[U, N]`` each user would get on each candidate, given the loads:
    ``bandwidth / max(load + 1 - is_current, 1) * log2(1 + SINR)``."""
    join_load = cand_load + 1.0 - is_cur.astype(jnp.float32)
    return bandwidth_hz / jnp.maximum(join_load, 1.0) * link.spectral_efficiency(cand_sinr)


def paper_features(top, cand_load, is_cur, params) -> jax.Array:
    """The paper's state ``[U, 3N]``: SINR (dB, normalised), raw load / ``load_ref``,
    previous-association flag (see the table in :mod:`dtwin_jax.envs.association.env`)."""
    top_db = link.linear_to_db(top)
    return jnp.concatenate([
        jnp.clip((top_db - 10.0) / 20.0, -FEATURE_LIMIT, FEATURE_LIMIT),
        jnp.clip(cand_load / params.load_ref, 0.0, LOAD_LIMIT),
        is_cur.astype(jnp.float32),
    ], axis=-1)


def rich_features(top, cand_load, is_cur, n_act, params) -> jax.Array:
    """The ablation state ``[U, 4N]``: SINR, load / mean load per BS, flag, and the log of
    the rate if the user joined (the greedy-rate baseline's score)."""
    num_bs = params.bs_xy.shape[0]
    rel_load = cand_load / (n_act / num_bs)
    rate = join_rate(top, cand_load, is_cur, params.bandwidth_hz)
    return jnp.concatenate([
        jnp.clip((link.linear_to_db(top) - 10.0) / 20.0, -FEATURE_LIMIT, FEATURE_LIMIT),
        jnp.clip(rel_load, 0.0, LOAD_LIMIT),
        is_cur.astype(jnp.float32),
        jnp.clip(log_util(rate, params) / 5.0, -FEATURE_LIMIT, FEATURE_LIMIT),
    ], axis=-1)


def observe(token_u, active, assoc, sinr_lin, params, num_candidates: int, rich: bool = False):
    """Candidates, action mask and features at the current positions.

    ``token_u [U]``: uniforms in [0, 1) that hand out the decision tokens (a user holding one,
    or whose current BS left its candidates, may pick any candidate; the others only their
    current BS). ``rich`` (static): the 4N ablation state instead of the paper's 3N.
    Returns ``(AgentObs, candidates [U, N] int32, mask [U, N] bool)``; see the feature table
    in :mod:`dtwin_jax.envs.association.env`.
    """
    num_bs = sinr_lin.shape[-1]
    top, sel = top_candidates(sinr_lin, num_candidates)  # [U, N], [U, N, B]
    b_idx = jnp.arange(num_bs, dtype=jnp.int32)
    cand = jnp.sum(jnp.where(sel, b_idx, 0), axis=-1)  # [U, N]
    is_cur = cand == assoc[:, None]
    has_cur = is_cur.any(-1)
    token = token_u < params.decision_prob
    free = token | ~has_cur
    mask = free[:, None] | is_cur

    load = bs_loads(assoc, active, num_bs)  # [B]
    cand_load = jnp.sum(jnp.where(sel, load, 0.0), axis=-1)  # [U, N]
    if rich:
        n_act = jnp.maximum(active.sum(), 1).astype(jnp.float32)
        feats = rich_features(top, cand_load, is_cur, n_act, params)
    else:
        feats = paper_features(top, cand_load, is_cur, params)
    return AgentObs(features=feats, action_mask=mask, agent_mask=active), cand, mask

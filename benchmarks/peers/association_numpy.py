"""NumPy reference of ``association-v0``'s step for ``bench_association``, in float32 like the
env: the same physics as :mod:`dtwin_jax.envs.association` (``env.py``, ``physics.py``),
:mod:`dtwin_jax.radio` (38.901 UMa/UMi pathloss with LOS probability, the periodic shadowing
tile read bilinearly, full-load SINR, load-coupled rates) and random waypoint mobility, under
the max-SINR policy (each user joins its legal candidate of highest SINR).

:func:`step` runs one step of B twins on ``[B, ...]`` arrays (U user slots, M BSs, N
candidates, T + 1 tile cells a side; positions in m, powers in W, rates in bit/s), so it gives
both peers of the benchmark:

* peer (a), as published simulators are written: one twin at a time, ``step`` on a B = 1
  state in a Python loop over twins;
* peer (b): all twins at once, ``step`` on the whole batch.

The twins share one parameter set (:func:`params_to_numpy`); states come from the JAX env
(:func:`state_to_numpy` of a batched ``AssociationState``). Per step: the policy, rates,
rewards and the throughput the benchmark reads (per user and mean), then the move (random
waypoint: the NumPy ``waypoint_step`` of ``tests/envs/edge_numpy_reference.py``, float64 draws,
positions kept in float32), departures and arrivals, the SINR at the new positions and the
observation (the "paper" features). Left out: auto-reset (the benchmark's episodes never
end), the cell-edge and Jain metrics (the benchmark does not read them), the "rich"
observation. Random draws use a ``numpy.random.Generator``, so they differ from JAX's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "envs"))

import edge_numpy_reference  # noqa: E402  (its random waypoint step)

F32 = np.float32
DB_TO_LN = F32(np.log(10.0) / 10.0)
LOG2_E = F32(1.0 / np.log(2.0))
TINY = F32(1e-30)
SINR_MAX = F32(1e15)
P_MAX_W = F32(1e30)
DB_MAX = F32(300.0)
D_MIN_M, D_MAX_M = F32(1.0), F32(1e7)
RATE_FLOOR_BPS = F32(1e3)
FEATURE_LIMIT, LOAD_LIMIT = F32(10.0), F32(20.0)
#: 38.901 LOS two-slope constants (a, b_near, c_fc, b_far) and NLOS fits (a, b, c_fc, h_ut
#: slope); the LOS probability's decay length (m); UMa then UMi
LOS_FIT = {"uma": (28.0, 22.0, 20.0, 9.0), "umi": (32.4, 21.0, 20.0, 9.5)}
NLOS_FIT = {"uma": (13.54, 39.08, 20.0, 0.6), "umi": (22.4, 35.3, 21.3, 0.3)}
LOS_DECAY_M = {"uma": 63.0, "umi": 36.0}

_MOBILITY = ("area_min", "area_max", "dt", "speed_min", "speed_max", "pause_min", "pause_max")


def params_to_numpy(params, num_macro: int) -> dict:
    """One twin's ``AssociationParams`` (waypoint mobility) -> dict of float32 arrays, its
    mobility fields flattened in; ``num_macro`` (the env's) is kept too."""
    p = {k: np.asarray(v, F32) for k, v in vars(params).items()
         if k not in ("mobility", "num_users", "episode_length")}
    p.update({k: np.asarray(getattr(params.mobility, k), F32) for k in _MOBILITY})
    p["num_users"] = F32(params.num_users)
    p["num_macro"] = num_macro
    return p


def state_to_numpy(state) -> dict:
    """A JAX ``AssociationState`` of B twins (leading axis B; waypoint mobility) -> dict of
    NumPy arrays: ``mob`` (``pos``, ``dest`` [B, U, 2], ``speed``, ``pause_left`` [B, U]),
    ``tile`` [B, T + 1, T + 1, M], ``cell`` [B], ``offset`` [B, 2], ``swap`` [B],
    ``flip`` [B, 2], ``active``, ``assoc`` [B, U], ``sinr`` [B, U, M], ``candidates``,
    ``mask`` [B, U, N], ``t``, ``phase`` [B]."""
    mob, tile = state.mobility, state.shadow
    return {
        "mob": {k: np.asarray(getattr(mob, k)) for k in ("pos", "dest", "speed", "pause_left")},
        "tile": np.asarray(tile.values), "cell": np.asarray(tile.cell_size),
        "offset": np.asarray(tile.offset), "swap": np.asarray(tile.swap),
        "flip": np.asarray(tile.flip), "active": np.asarray(state.active),
        "assoc": np.asarray(state.assoc), "sinr": np.asarray(state.sinr),
        "candidates": np.asarray(state.candidates), "mask": np.asarray(state.action_mask),
        "t": np.asarray(state.t), "phase": np.asarray(state.phase),
    }


def twin(st: dict, i: int) -> dict:
    """Twin ``i`` of a batched state, as a batch of one (``[1, ...]`` arrays)."""
    return {k: twin(v, i) if isinstance(v, dict) else v[i:i + 1] for k, v in st.items()}


# --------------------------------------------------------------------------------- physics
def _log10(x):
    """``log10`` guarded below at 1e-30."""
    return np.log10(np.maximum(x, TINY))


def shadowing_db(st: dict, pos) -> np.ndarray:
    """``[B, U, M]`` dB: every BS's tile read at ``pos [B, U, 2]`` (episode symmetry and offset
    applied, then bilinear in the cell)."""
    tile = st["tile"]
    num_twins, t1 = tile.shape[:2]
    xy = np.where(st["swap"][:, None, None], pos[..., ::-1], pos)
    xy = np.where(st["flip"][:, None, :], -xy, xy) + st["offset"][:, None, :]
    u = np.mod(xy / st["cell"][:, None, None], F32(t1 - 1))
    i = np.clip(np.floor(u).astype(np.int32), 0, t1 - 2)
    frac = np.clip(u - i.astype(F32), F32(0.0), F32(1.0))
    tx, ty = frac[..., :1], frac[..., 1:]
    b, ix, iy = np.arange(num_twins)[:, None], i[..., 0], i[..., 1]
    return ((1 - ty) * (1 - tx) * tile[b, iy, ix] + (1 - ty) * tx * tile[b, iy, ix + 1]
            + ty * (1 - tx) * tile[b, iy + 1, ix] + ty * tx * tile[b, iy + 1, ix + 1])


def pathloss(d2, d3, h_bs, h_ut, fc, kind: str):
    """38.901 ``kind`` ("uma" or "umi"): LOS and NLOS pathloss (dB) and LOS probability of
    links with 2D / 3D distances ``d2``, ``d3`` [B, U, M'] (m) to BSs of heights ``h_bs`` [M']."""
    a, b_near, c_fc, b_far = LOS_FIT[kind]
    d = np.clip(d3, D_MIN_M, D_MAX_M)
    d_bp = 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc * 1e9 / F32(3.0e8)
    dh = h_bs - h_ut
    log_d, log_fc = _log10(d), _log10(fc)
    pl1 = a + b_near * log_d + c_fc * log_fc
    pl2 = a + 40.0 * log_d + c_fc * log_fc - b_far * _log10(d_bp * d_bp + dh * dh)
    near = (d_bp >= 0.0) & (d * d - dh * dh <= d_bp * d_bp)
    los = np.where(near, pl1, pl2)
    a, b, c_fc, h_slope = NLOS_FIT[kind]
    nlos = np.maximum(los, a + b * log_d + c_fc * log_fc - h_slope * (h_ut - 1.5))
    d2 = np.clip(d2, D_MIN_M, D_MAX_M)
    p = F32(18.0) / d2 + np.exp(-d2 / F32(LOS_DECAY_M[kind])) * (1.0 - F32(18.0) / d2)
    if kind == "uma":
        h = np.clip(h_ut, 0.0, 23.0)
        c = F32(0.0) if h <= 13.0 else F32(((h - 13.0) / 10.0) ** 1.5)
        p = p * (1.0 + c * 1.25 * (d2 / F32(100.0)) ** 3 * np.exp(-d2 / F32(150.0)))
    return los, nlos, np.where(d2 <= 18.0, F32(1.0), np.clip(p, 0.0, 1.0))


def rx_power_w(st: dict, pos, p) -> np.ndarray:
    """``[B, U, M]`` W: tx power - expected pathloss (LOS-probability weighted) - shadowing."""
    h_ut, m = p["ue_height_m"], p["num_macro"]
    dx, dy = (np.clip(pos[..., None, k] - p["bs_xy"][:, k], -D_MAX_M, D_MAX_M) for k in (0, 1))
    d2 = np.sqrt(dx * dx + dy * dy)
    dh = np.clip(h_ut - p["bs_height_m"], -D_MAX_M, D_MAX_M)
    d3 = np.sqrt(d2 * d2 + dh * dh)
    parts = [pathloss(d2[..., sl], d3[..., sl], p["bs_height_m"][sl], h_ut, p["fc_ghz"], kind)
             for sl, kind in ((slice(0, m), "uma"), (slice(m, None), "umi"))
             if p["bs_height_m"][sl].size]
    pl_los, pl_nlos, p_los = (np.concatenate(x, axis=-1) for x in zip(*parts, strict=True))
    budget = np.minimum(p["tx_power_dbm"] - 30.0 - pl_los - shadowing_db(st, pos), DB_MAX)
    nlos_rel = np.exp(-DB_TO_LN * np.maximum(pl_nlos - pl_los, 0.0))
    return np.clip(np.exp(DB_TO_LN * budget) * (p_los + (1.0 - p_los) * nlos_rel), 0.0, P_MAX_W)


def noise_w(p) -> np.float32:
    """Thermal noise (W) over the bandwidth, with the UE noise figure."""
    dbm = -174.0 + 10.0 * _log10(p["bandwidth_hz"]) + p["noise_figure_db"]
    return np.power(F32(10.0), np.minimum(dbm - 30.0, DB_MAX) / 10.0)


def full_load_sinr(st: dict, pos, p) -> np.ndarray:
    """``[B, U, M]`` linear SINR at ``pos`` with every other BS at full load."""
    rx = rx_power_w(st, pos, p)
    interference = rx @ (1.0 - np.eye(rx.shape[-1], dtype=F32))
    return np.minimum(rx / np.maximum(interference + np.maximum(noise_w(p), 0.0), TINY),
                      SINR_MAX)


def spectral_efficiency(sinr) -> np.ndarray:
    """``log2(1 + sinr)`` bit/s/Hz."""
    return np.log1p(np.maximum(sinr, 0.0)) * LOG2_E


def bs_loads(assoc, active, num_bs: int) -> np.ndarray:
    """``[B, M]`` float32: active users on each BS."""
    return ((assoc[..., None] == np.arange(num_bs)) & active[..., None]).sum(-2).astype(F32)


def log_util(rate, p) -> np.ndarray:
    """``ln(max(rate, 1 kbps) / rate_ref)``."""
    return np.log(np.maximum(rate, RATE_FLOOR_BPS) / p["rate_ref_bps"])


def _gather(x, index) -> np.ndarray:
    """``x [B, M]`` read at ``index [B, ...]`` per twin."""
    return x[np.arange(len(x)).reshape(-1, *([1] * (index.ndim - 1))), index]


# ------------------------------------------------------------------------- policy and step
def max_sinr(st: dict) -> np.ndarray:
    """``[B, U]`` BS of each user: its legal candidate of highest SINR."""
    cand_sinr = np.take_along_axis(st["sinr"], st["candidates"], axis=-1)
    pick = np.argmax(np.where(st["mask"], cand_sinr, -np.inf), axis=-1)
    return np.take_along_axis(st["candidates"], pick[..., None], axis=-1)[..., 0]


def serve(st: dict, assoc, p) -> tuple[np.ndarray, dict]:
    """Rates and rewards of serving ``assoc [B, U]`` at the current positions: ``reward
    [B, U]`` and ``info`` (``throughput`` [B, U], ``mean_throughput`` [B], ``load`` [B, M],
    ``handovers`` [B])."""
    active, sinr = st["active"], st["sinr"]
    load = bs_loads(assoc, active, sinr.shape[-1])
    share = np.maximum(p["bandwidth_hz"], 0.0) / np.maximum(load, 1.0)
    own_sinr = np.take_along_axis(sinr, assoc[..., None], axis=-1)[..., 0]
    rate = np.where(active, _gather(share, assoc) * spectral_efficiency(own_sinr), F32(0.0))
    util = log_util(rate, p)
    handover = active & (assoc != st["assoc"])
    n_act = np.maximum(active.sum(-1), 1).astype(F32)
    net = np.where(active, util, F32(0.0)).sum(-1) / n_act
    reward = p["w_own"] * util + p["w_net"] * net[:, None] - p["w_handover"] * handover
    info = {"throughput": rate, "mean_throughput": rate.sum(-1) / n_act, "load": load,
            "handovers": handover.sum(-1)}
    return np.where(active, reward, F32(0.0)), info


def churn(u, active, t, phase, p) -> np.ndarray:
    """``[B, U]`` active users after departures and arrivals towards the density profile
    ``n*(t)`` (``u [B, U]`` uniforms, ``t``, ``phase`` [B])."""
    max_users = active.shape[-1]
    angle = 2.0 * np.pi * (t.astype(F32) / p["density_period"] + phase)
    target = np.clip(p["num_users"] * (1.0 + p["density_amp"] * np.sin(angle)), 0.0, max_users)
    n = active.sum(-1).astype(F32)
    need = np.where(n > 0, 1.0 - target / np.maximum(n, 1.0), F32(0.0))
    leave = np.clip(np.maximum(p["churn"], need), 0.0, 1.0)[:, None]
    free = np.maximum(max_users - n, 1.0)
    arrive = np.clip((target - n * (1.0 - leave[:, 0])) / free, 0.0, 1.0)[:, None]
    return np.where(active, u >= leave, u < arrive)


def move(rng, mob: dict, p) -> dict:
    """Random waypoint step of ``mob`` (``[B, U, ...]``; the edge reference's NumPy step on
    the users of all twins side by side, back to float32)."""
    shape = mob["speed"].shape
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in mob.items()}
    new = edge_numpy_reference.waypoint_step(rng, flat, p)
    return {k: v.reshape(*shape, *v.shape[1:]).astype(F32) for k, v in new.items()}


def observe(token_u, active, assoc, sinr, p, num_candidates: int):
    """``features [B, U, 3N]`` (the "paper" state), ``candidates [B, U, N]`` (best SINR
    first, ties to the lower index) and ``mask [B, U, N]``."""
    cand = np.argsort(-sinr, axis=-1, kind="stable")[..., :num_candidates]
    top = np.take_along_axis(sinr, cand, axis=-1)
    is_cur = cand == assoc[..., None]
    free = (token_u < p["decision_prob"]) | ~is_cur.any(-1)
    mask = free[..., None] | is_cur
    cand_load = _gather(bs_loads(assoc, active, sinr.shape[-1]), cand)
    feats = np.concatenate([
        np.clip((10.0 * _log10(top) - 10.0) / 20.0, -FEATURE_LIMIT, FEATURE_LIMIT),
        np.clip(cand_load / p["load_ref"], 0.0, LOAD_LIMIT),
        is_cur.astype(F32),
    ], axis=-1)
    return feats, cand, mask


def step(rng: np.random.Generator, st: dict, p) -> tuple[np.ndarray, dict, np.ndarray, dict]:
    """One max-SINR step of B twins: ``(features [B, U, 3N], next state, reward [B, U],
    info)``; see the module docstring."""
    churn_u, token_u = rng.random((2, *st["active"].shape), F32)
    assoc = max_sinr(st)
    reward, info = serve(st, assoc, p)
    mob = move(rng, st["mob"], p)
    t = st["t"] + 1
    active = churn(churn_u, st["active"], t, st["phase"], p)
    sinr = full_load_sinr(st, mob["pos"], p)
    assoc = np.where(active & ~st["active"], np.argmax(sinr, axis=-1), assoc)
    feats, cand, mask = observe(token_u, active, assoc, sinr, p, st["candidates"].shape[-1])
    new = dict(st, mob=mob, active=active, assoc=assoc, sinr=sinr, candidates=cand, mask=mask,
               t=t)
    return feats, new, reward, info

"""NumPy + SciPy reference of one ``dnt-sync-v0`` slot (and of a whole step, for the benchmark).

Written from the equations in ``dtwin_jax/envs/dnt_sync/physics.py``'s docstring, in float64,
one twin at a time, with ``scipy.optimize.linear_sum_assignment`` for every BS's matching and a
NumPy GRU for the predictor. Nothing here calls the JAX implementation.

- :func:`slot` mirrors ``physics.slot`` on identical draws (tests compare them);
- :func:`features`, :func:`flat_mask`, :func:`factored_mask` mirror the observation;
- :class:`ReferenceEnv` is a full step (NumPy draws, predictor, slot, random walk, observation)
  for ``benchmarks/bench_dnt.py``.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

STALE_CLIP = 20
MOVES = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0], [1.0, 0.0]])


def to_numpy(params) -> dict:
    """``DntParams`` -> dict of float64 NumPy arrays (mobility fields flattened in)."""
    names = ("bs_xy", "coverage_radius", "cloud_xy", "bandwidth", "tx_power", "noise_density",
             "min_distance", "update_size", "delay_threshold", "eps", "rho")
    p = {n: np.asarray(getattr(params, n), np.float64) for n in names}
    p["episode_length"] = int(params.episode_length)
    mob = params.mobility
    for n in ("area_min", "area_max", "move_probs", "step_length"):
        p[n] = np.asarray(getattr(mob, n), np.float64)
    return p


def _dist(pos, bs_xy):
    return np.linalg.norm(pos[None, :, :] - bs_xy[:, None, :], axis=-1)  # [M, U]


def _rate(bw, sinr):
    return bw * np.log2(1.0 + sinr)


def slot(pos, prediction, fading, uplink_fading, update, serve, p) -> dict:
    """One slot: gains, per-BS scipy matchings, update arrival, twin, errors, rewards."""
    pos = np.asarray(pos, np.float64)
    num_bs, num_users = serve.shape
    num_rbs = fading.shape[-1]
    dist = _dist(pos, p["bs_xy"])
    cov = dist <= p["coverage_radius"]
    serve = np.asarray(serve, bool) & cov
    update = np.asarray(update, bool)
    gain = fading * (np.maximum(dist, p["min_distance"]) ** -2.0).T[:, :, None]
    d_up = np.linalg.norm(p["bs_xy"] - p["cloud_xy"], axis=-1)
    g_up = uplink_fading * np.maximum(d_up, p["min_distance"])[:, None] ** -2.0
    noise = p["noise_density"] * p["bandwidth"]
    power, bw = p["tx_power"], p["bandwidth"]

    reserved = np.zeros((num_bs, num_rbs), bool)
    update_rate = np.zeros(num_bs)
    for m in range(num_bs):
        if update[m]:
            reserved[m, np.argmax(g_up[m])] = True
            update_rate[m] = _rate(bw, power * g_up[m].max() / noise)

    alloc = np.zeros((num_users, num_bs, num_rbs))
    interference = np.zeros((num_users, num_rbs))
    for m in range(num_bs):
        rate = _rate(bw, power * gain[:, m] / (interference + noise))
        allowed = serve[m][:, None] & ~reserved[m][None, :]
        rows, cols = scipy.optimize.linear_sum_assignment(np.where(allowed, rate, -1e9),
                                                          maximize=True)
        keep = allowed[rows, cols]
        alloc[rows[keep], m, cols[keep]] = 1.0
        interference += power * gain[:, m] * alloc[:, m].max(axis=0)[None, :]

    transmits = alloc.max(axis=0)  # [M, N]
    rx = power * gain
    sinr = np.zeros_like(rx)
    for m in range(num_bs):
        others = sum(rx[:, o] * transmits[o][None, :] for o in range(num_bs) if o != m)
        sinr[:, m] = alloc[:, m] * rx[:, m] / (others + noise)
    link_rate = alloc * _rate(bw, sinr)
    rates = link_rate.sum(axis=(1, 2))
    rate_bs = link_rate.sum(axis=(0, 2))

    update_ok = update & (update_rate * p["delay_threshold"] >= p["update_size"])
    exact = (cov & update_ok[:, None]).any(axis=0)
    twin = np.where(exact[:, None], pos, prediction)
    user_error = ((pos - twin) ** 2).sum(-1)
    twin_error = user_error.sum()

    n_serving = serve.sum(axis=0)
    overlap = n_serving > 1
    served_by = np.where(n_serving == 0, -1, np.where(overlap, -2, serve.argmax(axis=0)))
    w = (1.0 - p["eps"]) / num_users
    if overlap.any():
        team = p["rho"] * overlap.sum()
    else:
        team = -w * twin_error + p["eps"] * rates.sum()
    reward = np.array([
        -w * user_error[cov[m]].sum() + p["eps"] * rate_bs[m]
        + p["rho"] * (serve[m] & overlap).sum()
        for m in range(num_bs)
    ])
    rb_user = np.full((num_bs, num_rbs), -1)
    for u, m, r in zip(*np.nonzero(alloc), strict=True):
        rb_user[m, r] = u
    rb_user[reserved] = -2
    return {
        "serve": serve, "update_ok": update_ok, "update_rate": update_rate, "alloc": alloc,
        "rb_user": rb_user, "rates": rates, "rate_bs": rate_bs, "served_by": served_by,
        "twin": twin, "exact": exact, "user_error": user_error, "twin_error": twin_error,
        "reward": reward, "team_reward": team, "reserved": reserved,
    }


def features(pos, stale, last_update, since_update, p) -> np.ndarray:
    """``[M, 5U + 2 + M]`` observation (table in the env's docstring)."""
    pos = np.asarray(pos, np.float64)
    num_bs = p["bs_xy"].shape[0]
    dist = _dist(pos, p["bs_xy"])
    cov = dist <= p["coverage_radius"]
    radius = p["coverage_radius"]
    rel = np.clip((pos[None] - p["bs_xy"][:, None]) / radius, -1, 1) * cov[..., None]
    log_gain = np.log(radius / np.maximum(dist, p["min_distance"])) / np.log(radius)
    log_gain = np.clip(log_gain, 0.0, 1.0) * cov
    stale_f = np.minimum(stale, STALE_CLIP) / STALE_CLIP
    since_f = np.minimum(since_update, STALE_CLIP) / STALE_CLIP
    return np.concatenate([
        cov.astype(float), rel[..., 0], rel[..., 1],
        np.broadcast_to(stale_f, cov.shape), log_gain,
        np.asarray(last_update, float)[:, None], since_f[:, None], np.eye(num_bs),
    ], axis=-1)


def flat_mask(cov) -> np.ndarray:
    """``[M, 2^(U+1)]``: index a is legal iff none of its serve bits is an uncovered user."""
    num_users = cov.shape[1]
    outside = (~cov * (1 << np.arange(num_users))).sum(-1)  # [M] bit set of uncovered users
    serve_bits = np.arange(2 ** (num_users + 1)) >> 1
    return (serve_bits[None, :] & outside[:, None]) == 0


def factored_mask(cov) -> np.ndarray:
    """``[M, U+1, 2]``: value 1 of factor 1+u legal iff u is covered; update always legal."""
    num_bs = cov.shape[0]
    one = np.concatenate([np.ones((num_bs, 1), bool), cov], axis=-1)
    return np.stack([np.ones_like(one), one], axis=-1)


def gru_predictor(weights, config) -> callable:
    """NumPy version of the shipped GRU predictor: ``history [K, U, 2] -> [U, 2]``.

    ``weights``: the flax variable dict (``{"params": {...}}``); ``config``: its
    ``PredictorConfig`` (area, step length).
    """
    w = {k: ({kk: np.asarray(vv, np.float64) for kk, vv in v.items()} if isinstance(v, dict)
             else np.asarray(v, np.float64)) for k, v in weights["params"].items()}
    hsz = w["hidden_bias_n"].shape[0]
    lo, hi = np.asarray(config.area_min), np.asarray(config.area_max)
    step = config.step_length

    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))

    def predict(history):
        seq = np.swapaxes(np.asarray(history, np.float64), 0, 1)  # [U, K, 2]
        disp = np.diff(seq, axis=1, prepend=seq[:, :1]) / step
        x = np.concatenate([(seq - (lo + hi) / 2) / ((hi - lo) / 2), disp], axis=-1)
        xi = x @ w["input"]["kernel"] + w["input"]["bias"]  # [U, K, 3H]
        h = np.zeros((seq.shape[0], hsz))
        for k in range(seq.shape[1]):
            hh = h @ w["hidden_kernel"] if k else np.zeros((h.shape[0], 3 * hsz))  # h_0 = 0
            r = sigmoid(xi[:, k, :hsz] + hh[:, :hsz])
            z = sigmoid(xi[:, k, hsz:2 * hsz] + hh[:, hsz:2 * hsz])
            n = np.tanh(xi[:, k, 2 * hsz:] + r * (hh[:, 2 * hsz:] + w["hidden_bias_n"]))
            h = (1.0 - z) * n + z * h
        a = np.maximum(h @ w["head"]["kernel"] + w["head"]["bias"], 0.0)
        out = a @ w["out"]["kernel"] + w["out"]["bias"]
        return np.clip(seq[:, -1] + step * out, lo, hi)

    return predict


class ReferenceEnv:
    """A whole ``dnt-sync-v0`` step in NumPy (flat actions), one twin, for benchmarks.

    ``reset(rng) -> state`` and ``step(rng, state, action) -> (features, mask, state,
    reward, team_reward)``; ``state`` is a dict. Auto-reset is left out (the benchmark
    compares steps).
    """

    def __init__(self, params, num_rbs: int, history_len: int, predictor):
        self.p = to_numpy(params)
        self.num_bs = self.p["bs_xy"].shape[0]
        self.num_users = self.p["move_probs"].shape[0]
        self.num_rbs = num_rbs
        self.k = history_len
        self.predictor = predictor
        cdf = np.cumsum(self.p["move_probs"], axis=-1)
        self.cdf = cdf / cdf[:, -1:]

    def reset(self, rng) -> dict:
        lo, hi = self.p["area_min"], self.p["area_max"]
        pos = lo + rng.random((self.num_users, 2)) * (hi - lo)
        return {"pos": pos, "history": np.repeat(pos[None], self.k, axis=0),
                "stale": np.zeros(self.num_users, int), "last": np.zeros(self.num_bs, bool),
                "since": np.zeros(self.num_bs, int), "t": 0}

    def step(self, rng, state: dict, action):
        u, m, n = self.num_users, self.num_bs, self.num_rbs
        e = rng.exponential(size=(u + 1, m, n))
        action = np.asarray(action, np.int64)
        action = np.where((action >= 0) & (action < 2 ** (u + 1)), action, 0)
        update = (action & 1) == 1
        serve = ((action[:, None] >> np.arange(1, u + 1)) & 1) == 1
        pred = self.predictor(state["history"])
        res = slot(state["pos"], pred, e[:u], e[u], update, serve, self.p)
        move = (rng.random((u, 1)) >= self.cdf[:, :4]).sum(-1)
        pos = np.clip(state["pos"] + self.p["step_length"] * MOVES[move],
                      self.p["area_min"], self.p["area_max"])
        new = {
            "pos": pos,
            "history": np.concatenate([state["history"][1:], res["twin"][None]]),
            "stale": np.where(res["exact"], 0, state["stale"] + 1),
            "last": res["update_ok"],
            "since": np.where(res["update_ok"], 0, state["since"] + 1),
            "t": state["t"] + 1,
        }
        feats = features(pos, new["stale"], new["last"], new["since"], self.p)
        cov = _dist(pos, self.p["bs_xy"]) <= self.p["coverage_radius"]
        return feats, flat_mask(cov), new, res["reward"], res["team_reward"]

"""NumPy + SciPy reference of one ``edge-retrain-v0`` twin (the env's defaults: 3 BSs, 10
users, ``retraining="incremental"``, ``association="round"``; the other schemes too).

Written from the env's module docstring and code semantics (``dtwin_jax/envs/edge_retrain``:
``env.py``, ``physics.py``, ``learning.py``, ``kl_mix.py``; the association rule of
``dtwin_jax/allocation/association_lp.py``), in float64 NumPy, one twin at a time (vectorised
over the users of the twin). Nothing here calls the JAX implementation. Draws come from a
``numpy.random.Generator``: the streams differ from JAX's, so the tests compare deterministic
formulas on identical inputs and the statistics of episodes, never random streams.

Pieces (each a plain function, the tests call them on the JAX side's inputs):

- radio and delay: :func:`distances`, :func:`uplink_rates`, :func:`compute_shares`,
  :func:`inference_delay`, :func:`balanced_action` (the ``balanced`` baseline policy);
- the task and its samples (:func:`sample`), random waypoint mobility (:func:`waypoint_init`,
  :func:`waypoint_step`);
- the users' one-hidden-layer MLP: :func:`logits`, :func:`loss_and_grad` (hand-written
  backprop), :func:`sgd_steps` (full-batch gradient descent, per-sample weights);
- the twin's generator: :func:`generator_update` (Chan / Welford merge), forgetting,
  :func:`generate`;
- :func:`kl_mix`: the KL-optimal integer class counts by greedy marginal gain, started from
  zero (exact for this separable concave objective; the JAX version starts from the rounded
  water-filling solution and exchanges units, which reaches the same optimum);
- :func:`associate`: the capacitated association. ``method="round"`` (default, as the env):
  the LP relaxation solved by ``scipy.optimize.linprog`` (HiGHS), then the greedy rounding
  and local search of ``association_lp.round_association`` (:func:`round_association`,
  :func:`local_search`). With unit loads the constraint matrix is totally unimodular, so
  HiGHS returns an integral vertex that the rounding keeps; the JAX interior-point method
  returns the same point up to ~1e-5 when the optimum is unique (decisions may differ on
  near-ties). ``method="milp"``:
  ``scipy.optimize.milp`` on the integer problem directly (the env's ``"bnb"``).

:class:`ReferenceEnv` puts them together: ``reset(seed)`` and ``step(action [U, 2])`` ->
``(obs, reward, done, info)`` with the env's info keys (``delay``, ``inference_delay``,
``overhead``, ``accuracy``, ``mean_accuracy``, ``predicted_acc``, ``retrained``,
``frame_start``, ``assoc``); an episode that ends restarts as ``reset_from`` does (users
placed afresh, models and generator carried over), ``info["final_observation"]`` keeping
the last observation.

Differences from the env by design: the reference retrains only the users whose predicted
accuracy is below the threshold (the JAX env computes every user's retraining at fixed shapes
and keeps those), and keeps generated samples unpadded; neither changes a distribution.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

#: rate floor (bit/s) and compute-share floor of the env's physics
MIN_RATE = 1.0
MIN_SHARE = 1e-12
#: the rounding rule's tolerances (association_lp)
INTEGRAL_TOL = 1e-3
FIT_TOL = 1e-6
#: gain of a class's first sample when it has none (times p_c), as in kl_mix
EMPTY_GAIN = 1e30
USER_FEATURES = 5
OBS_CLIP = 10.0

_SCALARS = ("area_softness", "tx_power", "noise_power", "bandwidth", "pathloss_exp",
            "min_distance", "samples_per_slot", "bits_per_sample", "infer_flops", "local_flops",
            "bs_flops", "twin_flops", "train_flops_factor", "gen_flops", "acc_threshold",
            "handover_delay", "lr", "forget", "delay_scale")
_INTS = ("frame_length", "max_users_per_bs", "episode_length", "shift_slot")
_MOBILITY = ("area_min", "area_max", "dt", "speed_min", "speed_max", "pause_min", "pause_max")
_TASK = ("class_means", "area_priors", "area_shift", "noise_std")


def to_numpy(params) -> dict:
    """``EdgeParams`` (one twin) -> dict of float64 NumPy arrays / Python ints; the task's and
    the mobility's fields are flattened in (same names)."""
    p = {"bs_xy": np.asarray(params.bs_xy, np.float64)}
    p.update({n: float(np.asarray(getattr(params, n))) for n in _SCALARS})
    p.update({n: int(np.asarray(getattr(params, n))) for n in _INTS})
    p.update({n: np.asarray(getattr(params.mobility, n), np.float64) for n in _MOBILITY})
    p.update({n: np.asarray(getattr(params.task, n), np.float64) for n in _TASK})
    return p


# ------------------------------------------------------------------------------ radio, delay
def distances(pos, bs_xy) -> np.ndarray:
    """``[U, 2]``, ``[M, 2]`` m -> ``[U, M]`` m."""
    return np.linalg.norm(np.asarray(pos)[:, None, :] - np.asarray(bs_xy)[None], axis=-1)


def uplink_rates(dist, fading, p) -> np.ndarray:
    """``[U, M]`` bit/s: ``B log2(1 + P max(d, d_min)^-alpha h / N)``, floored at MIN_RATE."""
    gain = np.maximum(dist, p["min_distance"]) ** -p["pathloss_exp"]
    snr = p["tx_power"] * gain * fading / p["noise_power"]
    return np.maximum(p["bandwidth"] * np.log2(1.0 + snr), MIN_RATE)


def compute_shares(weights, assoc, num_bs: int) -> np.ndarray:
    """``[U]``: the compute weights normalised over the users of each BS (equal shares where
    a BS's weights sum to 0)."""
    weights = np.asarray(weights, np.float64)
    total = np.bincount(assoc, weights, minlength=num_bs)[assoc]
    count = np.bincount(assoc, minlength=num_bs)[assoc]
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0),
                    1.0 / np.maximum(count, 1))


def slot_times(rate, share, p) -> tuple[np.ndarray, np.ndarray]:
    """Seconds for the slot's whole workload: all local, all offloaded (upload + BS compute)."""
    work = p["samples_per_slot"] * p["infer_flops"]
    local = np.full(np.shape(rate), work / p["local_flops"])
    offload = (p["samples_per_slot"] * p["bits_per_sample"] / rate
               + work / (np.maximum(share, MIN_SHARE) * p["bs_flops"]))
    return local, offload


def inference_delay(offload_frac, rate, share, p) -> np.ndarray:
    """``[U]`` s: ``max((1 - x) local, x offload)``."""
    local, offload = slot_times(rate, share, p)
    return np.maximum((1.0 - offload_frac) * local, offload_frac * offload)


def upload_time(num_samples, rate, p) -> np.ndarray:
    return num_samples * p["bits_per_sample"] / rate


def retrain_time(sample_passes, generated, need, p) -> np.ndarray:
    """``[U]`` s on the twin's server, shared equally by the users retraining at once."""
    work = (sample_passes * p["train_flops_factor"] * p["infer_flops"]
            + generated * p["gen_flops"])
    sharing = max(int(np.sum(need)), 1)
    return np.where(need, work * sharing / p["twin_flops"], 0.0)


def balanced_action(rate, assoc, num_bs: int, p) -> np.ndarray:
    """The ``balanced`` baseline: equal shares, ``x = local / (local + offload)``; ``[U, 2]``
    (column 1 the shares themselves, as the JAX policy)."""
    share = compute_shares(np.ones(len(assoc)), assoc, num_bs)
    local, offload = slot_times(rate, share, p)
    return np.stack([local / (local + offload), share], axis=-1)


# ---------------------------------------------------------------------------------- mobility
def _new_leg(rng, num_users, p):
    u = rng.random((num_users, 4))
    dest = p["area_min"] + u[:, :2] * (p["area_max"] - p["area_min"])
    speed = p["speed_min"] + u[:, 2] * (p["speed_max"] - p["speed_min"])
    pause = p["pause_min"] + u[:, 3] * (p["pause_max"] - p["pause_min"])
    return dest, speed, pause


def waypoint_init(rng, num_users, p) -> dict:
    """Uniform positions, each user moving to a uniform destination at a uniform speed."""
    pos = p["area_min"] + rng.random((num_users, 2)) * (p["area_max"] - p["area_min"])
    dest, speed, _ = _new_leg(rng, num_users, p)
    return {"pos": pos, "dest": dest, "speed": speed, "pause_left": np.zeros(num_users)}


def waypoint_step(rng, mob, p) -> dict:
    """Advance ``speed * dt`` towards the destination; on arrival pause, new leg."""
    moving = mob["pause_left"] <= 0.0
    delta = mob["dest"] - mob["pos"]
    dist = np.linalg.norm(delta, axis=-1)
    travel = mob["speed"] * p["dt"]
    arrive = moving & (dist <= travel)
    ahead = mob["pos"] + delta * (travel / np.maximum(dist, 1e-6))[:, None]
    pos = np.where(arrive[:, None], mob["dest"], np.where(moving[:, None], ahead, mob["pos"]))
    pause_left = np.maximum(mob["pause_left"] - p["dt"], 0.0)
    dest, speed, pause = _new_leg(rng, len(pos), p)
    return {"pos": np.clip(pos, p["area_min"], p["area_max"]),
            "dest": np.where(arrive[:, None], dest, mob["dest"]),
            "speed": np.where(arrive, speed, mob["speed"]),
            "pause_left": np.where(arrive, pause, pause_left)}


# ------------------------------------------------------------------------------ task, samples
def area_weights(pos, p) -> np.ndarray:
    """``[U, M]`` softmax of ``-distance / area_softness``."""
    z = -distances(pos, p["bs_xy"]) / p["area_softness"]
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def task_at(t: int, p) -> tuple[np.ndarray, np.ndarray]:
    """``(area_priors, area_shift)`` in slot ``t``: rolled by one area after ``shift_slot``."""
    if 0 <= p["shift_slot"] <= t:
        return np.roll(p["area_priors"], 1, axis=0), np.roll(p["area_shift"], 1, axis=0)
    return p["area_priors"], p["area_shift"]


def _categorical(rng, probs) -> np.ndarray:
    """One draw per row of unnormalised ``probs [..., K]`` (inverse CDF)."""
    cum = np.cumsum(probs, axis=-1)
    u = rng.random(cum.shape[:-1]) * cum[..., -1]
    return np.minimum((cum <= u[..., None]).sum(-1), probs.shape[-1] - 1)


def sample(rng, task, weights, n: int, p) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples per row of ``weights [U, A]``: ``x [U, n, D]``, ``y [U, n]``.

    ``area ~ Cat(weights)``, ``y ~ Cat(priors[area])``, ``x = mean[y] + shift[area] + std z``.
    """
    priors, shift = task
    num_u = weights.shape[0]
    area = _categorical(rng, np.broadcast_to(weights[:, None, :], (num_u, n, weights.shape[1])))
    y = _categorical(rng, priors[area])
    noise = rng.standard_normal((num_u, n, p["class_means"].shape[1]))
    return p["class_means"][y] + shift[area] + p["noise_std"] * noise, y


# -------------------------------------------------------------------------------- classifier
# A classifier is a dict of arrays w1 [..., D, H], b1 [..., H], w2 [..., H, C], b2 [..., C];
# a leading users axis batches the users of a twin (data then [U, n, ...]).
def init_classifier(rng, num_users, dim, num_classes, hidden) -> dict:
    """He-normal ``w1``, LeCun-normal ``w2``, zero biases."""
    return {
        "w1": rng.standard_normal((num_users, dim, hidden)) * np.sqrt(2.0 / dim),
        "b1": np.zeros((num_users, hidden)),
        "w2": rng.standard_normal((num_users, hidden, num_classes)) * np.sqrt(1.0 / hidden),
        "b2": np.zeros((num_users, num_classes)),
    }


def _forward(params, x):
    pre = x @ params["w1"] + params["b1"][..., None, :]
    h = np.maximum(pre, 0.0)
    return pre, h, h @ params["w2"] + params["b2"][..., None, :]


def logits(params, x) -> np.ndarray:
    """``relu(x w1 + b1) w2 + b2``: ``x [..., n, D]`` -> ``[..., n, C]``."""
    return _forward(params, x)[2]


def accuracy(params, x, y, w=None) -> np.ndarray:
    """Fraction classified right (weighted by ``w``; 0 if all weights are 0), per user."""
    hit = (np.argmax(logits(params, x), axis=-1) == y).astype(np.float64)
    if w is None:
        return hit.mean(-1)
    return (w * hit).sum(-1) / np.maximum(w.sum(-1), 1e-12)


def loss_and_grad(params, x, y, w) -> tuple[np.ndarray, dict]:
    """Weighted mean cross entropy ``sum w_i CE_i / sum w_i`` and its gradient, by hand.

    ``x [..., n, D]``, ``y [..., n]`` int, ``w [..., n]`` (0 = padding: no effect at all).
    """
    keep = w > 0
    x = np.where(keep[..., None], x, 0.0)
    pre, h, lg = _forward(params, x)
    top = lg.max(-1, keepdims=True)
    ex = np.exp(lg - top)
    total = ex.sum(-1, keepdims=True)
    ce = (top + np.log(total))[..., 0] - np.take_along_axis(lg, y[..., None], axis=-1)[..., 0]
    norm = np.maximum(w.sum(-1), 1e-12)[..., None]                      # [..., 1]
    loss = np.where(keep, w * ce, 0.0).sum(-1) / norm[..., 0]
    prob = ex / total - np.eye(lg.shape[-1])[y]                         # softmax - onehot
    d_lg = prob * np.where(keep, w, 0.0)[..., None] / norm[..., None]    # [..., n, C]
    d_h = (d_lg @ np.swapaxes(params["w2"], -1, -2)) * (pre > 0)         # relu'(0) = 0
    grads = {
        "w2": np.swapaxes(h, -1, -2) @ d_lg, "b2": d_lg.sum(-2),
        "w1": np.swapaxes(x, -1, -2) @ d_h, "b1": d_h.sum(-2),
    }
    return loss, grads


def sgd_steps(params, x, y, steps: int, lr: float, w=None) -> dict:
    """``steps`` full-batch gradient-descent steps (no momentum) of :func:`loss_and_grad`."""
    w = np.ones(y.shape) if w is None else np.asarray(w, np.float64)
    for _ in range(steps):
        _, g = loss_and_grad(params, x, y, w)
        params = {k: params[k] - lr * g[k] for k in params}
    return params


# --------------------------------------------------------------------------------- generator
def generator_init(num_areas, num_classes, dim) -> dict:
    return {"count": np.zeros((num_areas, num_classes)),
            "mean": np.zeros((num_areas, num_classes, dim)),
            "m2": np.zeros((num_areas, num_classes, dim))}


def generator_forget(gen, forget: float) -> dict:
    """Keep a fraction ``forget`` of the history (counts and squared deviations; means kept)."""
    return {"count": gen["count"] * forget, "mean": gen["mean"], "m2": gen["m2"] * forget}


def generator_update(gen, x, y, area) -> dict:
    """Merge samples ``x [n, D]``, labels ``y [n]`` seen in ``area [n]`` into the per-(area,
    class) count, mean and squared deviations (Chan et al.'s pairwise update)."""
    num_a, num_c, dim = gen["mean"].shape
    cell = area * num_c + y
    n_b = np.bincount(cell, minlength=num_a * num_c).astype(np.float64)
    sums = np.zeros((num_a * num_c, dim))
    np.add.at(sums, cell, x)
    mean_b = sums / np.maximum(n_b, 1.0)[:, None]
    m2_b = np.zeros((num_a * num_c, dim))
    np.add.at(m2_b, cell, (x - mean_b[cell]) ** 2)
    n_a = gen["count"].reshape(-1)
    mean_a = gen["mean"].reshape(-1, dim)
    n = n_a + n_b
    frac = np.where(n > 0, n_b / np.maximum(n, 1.0), 0.0)[:, None]
    delta = mean_b - mean_a
    mean = mean_a + delta * frac
    m2 = gen["m2"].reshape(-1, dim) + m2_b + delta ** 2 * (n_a * frac[:, 0])[:, None]
    return {"count": n.reshape(num_a, num_c), "mean": mean.reshape(num_a, num_c, dim),
            "m2": m2.reshape(num_a, num_c, dim)}


def generator_variance(gen, default: float = 1.0) -> np.ndarray:
    """``[D]`` pooled within-cell variance ``sum m2 / (N - #non-empty cells)``."""
    dof = gen["count"].sum() - (gen["count"] > 0).sum()
    if dof <= 0:
        return np.full(gen["mean"].shape[-1], default)
    return gen["m2"].sum(axis=(0, 1)) / max(dof, 1.0)


def generate(rng, gen, weights, counts) -> tuple[np.ndarray, np.ndarray]:
    """Twin samples of one user: ``counts[c]`` of class ``c`` (classes seen in no area of
    positive weight are skipped), area ``~ p(a | c) ∝ weights[a] count[a, c] / count[a]``,
    ``x = mean[a, c] + sqrt(pooled variance) z``. Returns the valid samples only."""
    covered = ((weights[:, None] > 0) & (gen["count"] > 0)).any(axis=0)
    y = np.repeat(np.arange(len(counts)), np.where(covered, counts, 0))
    prior = gen["count"] / np.maximum(gen["count"].sum(-1, keepdims=True), 1.0)
    post = (weights[:, None] * prior).T                                # [C, A]
    area = _categorical(rng, post[y])
    std = np.sqrt(generator_variance(gen))
    x = gen["mean"][area, y] + std * rng.standard_normal((len(y), gen["mean"].shape[-1]))
    return x, y


def twin_mix(gen, weights) -> np.ndarray:
    """``[U, C]``: the twin's estimate of every user's class mix."""
    prior = gen["count"] / np.maximum(gen["count"].sum(-1, keepdims=True), 1.0)
    return weights @ prior


# ------------------------------------------------------------------------------------ kl mix
def kl_mix(real_counts, target, n_generated: int) -> np.ndarray:
    """``[..., C]`` int counts ``g >= 0``, ``sum g = n_generated``, maximising ``sum_c p_c
    log(n_c + g_c)`` (= minimising ``KL(p || (n + g) / (N + G))``), greedily: each unit goes
    to the class of largest marginal gain ``p_c log((m_c + 1) / m_c)`` (``EMPTY_GAIN p_c`` for
    an empty class, never a class with ``p_c = 0``; ties to the lowest index). Rows of
    ``[U, C]`` inputs are solved at once."""
    n = np.atleast_2d(np.asarray(real_counts, np.float64))
    p = np.atleast_2d(np.asarray(target, np.float64))
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-30)
    n = np.broadcast_to(n, p.shape)
    g = np.zeros(p.shape, np.int64)
    rows = np.arange(p.shape[0])
    for _ in range(int(n_generated)):
        m = n + g
        with np.errstate(divide="ignore"):
            gain = np.where(m > 0, p * np.log1p(1.0 / np.where(m > 0, m, 1.0)), EMPTY_GAIN * p)
        gain = np.where(p > 0, gain, -np.inf)
        g[rows, np.argmax(gain, axis=-1)] += 1
    return g.reshape(np.shape(target)) if np.ndim(target) == 1 else g


def mix_kl(real_counts, target, gen_counts) -> np.ndarray:
    """``KL(p || (n + g) / sum(n + g))`` (``inf`` where a class of ``p > 0`` has no mass)."""
    m = np.asarray(real_counts, np.float64) + gen_counts
    p = np.asarray(target, np.float64)
    p = p / p.sum(-1, keepdims=True)
    q = m / m.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p / q), 0.0).sum(-1)


# ------------------------------------------------------------------------------- association
def lp_relaxation(cost, load, capacity) -> tuple[np.ndarray, float]:
    """``scipy.optimize.linprog`` (HiGHS) of the capacitated assignment's LP relaxation:
    ``min sum cost x``, ``sum_m x[u, m] = 1``, ``sum_u load x[u, m] <= capacity[m]``,
    ``0 <= x <= 1``. Returns ``x [U, M]`` and the objective."""
    num_u, num_m = cost.shape
    a_eq = np.kron(np.eye(num_u), np.ones((1, num_m)))
    a_ub = np.zeros((num_m, num_u * num_m))
    for m in range(num_m):
        a_ub[m, m::num_m] = load[:, m]
    res = scipy.optimize.linprog(cost.ravel(), A_ub=a_ub, b_ub=capacity, A_eq=a_eq,
                                 b_eq=np.ones(num_u), bounds=(0.0, 1.0), method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    return res.x.reshape(num_u, num_m), float(res.fun)


def round_association(x_frac, cost, load, capacity) -> np.ndarray:
    """``association_lp.round_association``'s rule: a greedy placing one user per step -
    first users with at most one BS that still fits, then users whose LP row is integral
    (max >= 1 - 1e-3) onto their LP BS if it fits, then the others by largest regret
    (second-cheapest minus cheapest fitting cost), each onto its cheapest fitting BS, all
    re-evaluated after every placement, ties to the lowest user index (``-1`` for a user that
    fits nowhere) - followed by U steps of local search (:func:`local_search`)."""
    num_u, num_m = cost.shape
    lp_bs = np.argmax(x_frac, axis=1)
    integral = x_frac.max(axis=1) >= 1.0 - INTEGRAL_TOL
    assoc = np.full(num_u, -1)
    done = np.zeros(num_u, bool)
    remaining = np.asarray(capacity, np.float64).copy()
    rows = np.arange(num_u)
    for _ in range(num_u):
        fits = ~done[:, None] & (load <= remaining[None, :] + FIT_TOL * capacity)
        priced = np.where(fits, cost, np.inf)
        best = np.argmin(priced, axis=1)
        first = priced[rows, best]
        second = np.where(np.arange(num_m)[None, :] == best[:, None], np.inf, priced).min(1)
        n_fit = fits.sum(1)
        keep_lp = integral & fits[rows, lp_bs]
        tier = np.where(done, -1, np.where(n_fit <= 1, 2, np.where(keep_lp, 1, 0)))
        with np.errstate(invalid="ignore"):
            regret = np.where(tier == 0, second - first, 0.0)
        u = int(np.argmax(np.where(tier == tier.max(), regret, -np.inf)))
        if done[u]:
            break
        m = lp_bs[u] if keep_lp[u] else (best[u] if n_fit[u] > 0 else -1)
        assoc[u] = m
        done[u] = True
        if m >= 0:
            remaining[m] -= load[u, m]
    return local_search(assoc, cost, load, capacity)


def local_search(assoc, cost, load, capacity) -> np.ndarray:
    """U steps of the best improving move (one user to another BS) or swap (two users on
    different BSs exchange them) that keeps every capacity (slack 1e-6 relative); a step
    applies it only if it gains more than 1e-6 of the largest cost, the swap winning only if
    strictly better than the move. Placed users stay placed, -1 stays -1."""
    num_u, num_m = cost.shape
    rows = np.arange(num_u)
    min_gain = FIT_TOL * np.abs(cost).max()
    assoc = assoc.copy()
    for _ in range(num_u):
        placed, bs = assoc >= 0, np.maximum(assoc, 0)
        onehot = (assoc[:, None] == np.arange(num_m)[None, :])
        remaining = capacity - np.where(onehot, load, 0.0).sum(0) + FIT_TOL * capacity
        current = cost[rows, bs]
        can_move = ~onehot & placed[:, None] & (load <= remaining[None, :])
        move_gain = np.where(can_move, current[:, None] - cost, 0.0)
        cost_x, load_x = cost[:, bs], load[:, bs]          # [u, v]: u's cost on v's BS
        own = load[rows, bs]
        fits = ((load_x.T - own[:, None] <= remaining[bs][:, None])
                & (load_x - own[None, :] <= remaining[bs][None, :]))
        can_swap = (placed[:, None] & placed[None, :] & fits
                    & (bs[:, None] != bs[None, :]))
        swap_gain = np.where(can_swap, current[:, None] + current[None, :] - cost_x - cost_x.T,
                             0.0)
        mv, sw = int(np.argmax(move_gain)), int(np.argmax(swap_gain))
        best_move, best_swap = move_gain.ravel()[mv], swap_gain.ravel()[sw]
        if max(best_move, best_swap) <= min_gain:
            break
        if best_swap > best_move:
            u, v = divmod(sw, num_u)
            assoc[u], assoc[v] = assoc[v], assoc[u]
        else:
            assoc[mv // num_m] = mv % num_m
    return assoc


def milp_association(cost, load, capacity) -> np.ndarray:
    """The integer problem solved directly by ``scipy.optimize.milp`` (HiGHS)."""
    num_u, num_m = cost.shape
    a_eq = np.kron(np.eye(num_u), np.ones((1, num_m)))
    a_ub = np.zeros((num_m, num_u * num_m))
    for m in range(num_m):
        a_ub[m, m::num_m] = load[:, m]
    cons = [scipy.optimize.LinearConstraint(a_eq, 1.0, 1.0),
            scipy.optimize.LinearConstraint(a_ub, -np.inf, capacity)]
    res = scipy.optimize.milp(cost.ravel(), constraints=cons, integrality=np.ones(cost.size),
                              bounds=scipy.optimize.Bounds(0.0, 1.0))
    if res.status != 0:
        raise RuntimeError(f"milp failed: {res.message}")
    return np.argmax(res.x.reshape(num_u, num_m), axis=1)


def associate(cost, load, capacity, method: str = "round") -> np.ndarray:
    """``[U]`` serving BS: LP (linprog) + rounding (``"round"``) or milp (``"milp"``)."""
    if method == "milp":
        return milp_association(cost, load, capacity)
    x, _ = lp_relaxation(cost, load, capacity)
    return round_association(x, cost, load, capacity)


def association_cost(pos, p) -> np.ndarray:
    """``[U, M]`` s: upload time of a slot's samples at the mean rate (fading 1)."""
    rate = uplink_rates(distances(pos, p["bs_xy"]), 1.0, p)
    return p["samples_per_slot"] * p["bits_per_sample"] / rate


# ----------------------------------------------------------------------------------- the env
class ReferenceEnv:
    """One ``edge-retrain-v0`` twin in NumPy/SciPy (see the module docstring).

    ``ReferenceEnv(params, **sizes)``: ``params`` the JAX ``EdgeParams`` of one twin (or the
    dict of :func:`to_numpy`); ``sizes`` the env's static constructor arguments (defaults:
    the env's). ``association``: ``"round"`` (linprog + rounding) or ``"milp"``.
    """

    def __init__(self, params, num_users: int = 10, retraining: str = "incremental",
                 association: str = "round", hidden: int = 32, probe_samples: int = 8,
                 real_samples: int = 16, generated_samples: int = 48, full_samples: int = 256,
                 full_steps: int = 200, incremental_steps: int = 30, eval_samples: int = 64,
                 history_samples: int = 64):
        self.p = params if isinstance(params, dict) else to_numpy(params)
        self.num_bs = self.p["bs_xy"].shape[0]
        self.num_classes, self.dim = self.p["class_means"].shape
        self.num_users, self.retraining, self.association = num_users, retraining, association
        self.hidden = hidden
        self.probe_samples, self.real_samples = probe_samples, real_samples
        self.generated_samples = generated_samples if retraining == "incremental" else 0
        self.full_samples, self.full_steps = full_samples, full_steps
        self.incremental_steps, self.eval_samples = incremental_steps, eval_samples
        self.history_samples = history_samples
        self.rng = np.random.default_rng(0)
        self.state: dict = {}

    @classmethod
    def from_env(cls, env, params=None, association: str | None = None) -> ReferenceEnv:
        """The reference of a JAX ``EdgeRetrainEnv``'s configuration (reads its static ints)."""
        names = ("num_users", "retraining", "hidden", "probe_samples", "real_samples",
                 "generated_samples", "full_samples", "full_steps", "incremental_steps",
                 "eval_samples", "history_samples")
        assoc = association or ("milp" if env.association == "bnb" else "round")
        return cls(env.default_params if params is None else params, association=assoc,
                   **{n: getattr(env, n) for n in names})

    # ---------------------------------------------------------------------------- pieces
    def _train_full(self, task, weights) -> dict:
        """Fresh models of the users of ``weights [u, M]`` trained from scratch."""
        x, y = sample(self.rng, task, weights, self.full_samples, self.p)
        init = init_classifier(self.rng, weights.shape[0], self.dim, self.num_classes,
                               self.hidden)
        return sgd_steps(init, x, y, self.full_steps, self.p["lr"])

    def rates(self, st=None) -> np.ndarray:
        """``[U]`` bit/s to the serving BS in this slot."""
        st = self.state if st is None else st
        rates = uplink_rates(distances(st["mob"]["pos"], self.p["bs_xy"]), st["fading"], self.p)
        return rates[np.arange(self.num_users), st["assoc"]]

    def observe(self, st=None) -> np.ndarray:
        """The observation of the env's module docstring."""
        st = self.state if st is None else st
        p = self.p
        rate = self.rates(st)
        local, offload_all = slot_times(rate, np.ones_like(rate), p)
        upload = upload_time(p["samples_per_slot"], rate, p)
        onehot = np.eye(self.num_bs)[st["assoc"]]
        load = onehot @ onehot.sum(0) / self.num_users
        user = np.stack([rate / p["bandwidth"] / 10.0, upload / p["delay_scale"],
                         local / p["delay_scale"], (offload_all - upload) / p["delay_scale"],
                         load], axis=-1)
        t, frame = st["t"], p["frame_length"]
        glob = [(t % frame) / frame, t / p["episode_length"]]
        feats = np.concatenate([np.concatenate([user, onehot], -1).ravel(), glob])
        return np.clip(feats, 0.0, OBS_CLIP)

    def _predict_accuracy(self, models, gen, mix, weights, xp, yp) -> np.ndarray:
        if self.retraining == "real_only":
            return accuracy(models, xp, yp)
        counts = kl_mix(np.zeros_like(mix), mix, self.eval_samples)
        pred = np.zeros(self.num_users)
        for u in range(self.num_users):
            xg, yg = generate(self.rng, gen, weights[u], counts[u])
            one = {k: v[u] for k, v in models.items()}
            x = np.concatenate([xp[u], xg])
            y = np.concatenate([yp[u], yg])
            pred[u] = accuracy(one, x, y)
        return pred

    def _retrain(self, models, gen, mix, task, weights):
        """Retrained models of the users given (rows of ``models``, ``mix``, ``weights``),
        with the sample passes, generated and real samples per user. Only the users that need
        it are retrained (the JAX env computes every user's and keeps theirs)."""
        if self.retraining == "full":
            n = self.full_samples
            return self._train_full(task, weights), self.full_steps * n, 0.0, n
        num_u = weights.shape[0]
        xr, yr = sample(self.rng, task, weights, self.real_samples, self.p)
        n_gen = self.generated_samples
        n_tot = self.real_samples + n_gen
        x = np.zeros((num_u, n_tot, self.dim))
        y = np.zeros((num_u, n_tot), np.int64)
        w = np.zeros((num_u, n_tot))
        x[:, :self.real_samples], y[:, :self.real_samples] = xr, yr
        w[:, :self.real_samples] = 1.0
        if n_gen:
            real_counts = np.stack([np.bincount(r, minlength=self.num_classes) for r in yr])
            counts = kl_mix(real_counts, mix, n_gen)
            for u in range(num_u):  # valid generated samples, then padding (w = 0)
                xg, yg = generate(self.rng, gen, weights[u], counts[u])
                k = self.real_samples + len(yg)
                x[u, self.real_samples:k], y[u, self.real_samples:k] = xg, yg
                w[u, self.real_samples:k] = 1.0
        steps = self.incremental_steps
        new = sgd_steps(models, x, y, steps, self.p["lr"], w)
        return new, steps * n_tot, float(n_gen), self.real_samples

    def _frame(self, st) -> tuple[dict, np.ndarray]:
        """Frame start: probes + generator refit, association, prediction, retraining."""
        p = self.p
        pos = st["mob"]["pos"]
        task = task_at(st["t"], p)
        weights = area_weights(pos, p)
        area = np.argmax(weights, axis=-1)
        xp, yp = sample(self.rng, task, weights, self.probe_samples, p)
        gen = generator_forget(st["gen"], p["forget"])
        gen = generator_update(gen, xp.reshape(-1, self.dim), yp.ravel(),
                               np.repeat(area, self.probe_samples))

        cost = association_cost(pos, p)
        assoc = associate(cost, np.ones_like(cost), np.full(self.num_bs,
                          float(p["max_users_per_bs"])), self.association)
        rates = uplink_rates(distances(pos, p["bs_xy"]), st["fading"], p)
        rate = rates[np.arange(self.num_users), assoc]
        overhead = upload_time(self.probe_samples, rate, p)
        overhead += np.where((assoc != st["assoc"]) & (st["t"] > 0), p["handover_delay"], 0.0)

        mix = twin_mix(gen, weights)
        predicted = self._predict_accuracy(st["models"], gen, mix, weights, xp, yp)
        need = (predicted < p["acc_threshold"]) & (self.retraining != "none")
        models = st["models"]
        if need.any():
            users = np.flatnonzero(need)
            new, passes, generated, real = self._retrain(
                {k: v[users] for k, v in models.items()}, gen, mix[users], task,
                weights[users])
            models = {k: v.copy() for k, v in models.items()}
            for k in models:
                models[k][users] = new[k]
            overhead += np.where(need, upload_time(real, rate, p), 0.0)
            overhead += retrain_time(passes, generated, need, p)
        st = dict(st, assoc=assoc, models=models, gen=gen, predicted_acc=predicted,
                  retrained=need)
        return st, overhead

    # ------------------------------------------------------------------------------- API
    def reset(self, seed: int = 0) -> np.ndarray:
        """A fresh system (models trained from scratch, generator fitted on the history)."""
        self.rng = np.random.default_rng(seed)
        p = self.p
        mob = waypoint_init(self.rng, self.num_users, p)
        task = task_at(0, p)
        gen = generator_init(self.num_bs, self.num_classes, self.dim)
        if self.history_samples:
            xh, yh = sample(self.rng, task, np.eye(self.num_bs), self.history_samples, p)
            gen = generator_update(gen, xh.reshape(-1, self.dim), yh.ravel(),
                                   np.repeat(np.arange(self.num_bs), self.history_samples))
        models = self._train_full(task, area_weights(mob["pos"], p))
        self.state = {"models": models, "gen": gen, "predicted_acc": np.ones(self.num_users),
                      "retrained": np.zeros(self.num_users, bool)}
        return self.reset_from()

    def reset_from(self) -> np.ndarray:
        """The next episode: users placed afresh on their nearest BS, new fading, slot 0."""
        mob = waypoint_init(self.rng, self.num_users, self.p)
        dist = distances(mob["pos"], self.p["bs_xy"])
        self.state = dict(self.state, mob=mob, fading=self.rng.exponential(size=dist.shape),
                          assoc=np.argmin(dist, axis=-1), t=0,
                          retrained=np.zeros(self.num_users, bool))
        return self.observe()

    def step(self, action) -> tuple[np.ndarray, float, bool, dict]:
        """One slot under ``action [U, 2]`` (NaN -> 0, clipped to [0, 1]); auto-resets."""
        p = self.p
        action = np.clip(np.nan_to_num(np.asarray(action, np.float64), nan=0.0), 0.0, 1.0)
        st = self.state
        start = st["t"] % p["frame_length"] == 0
        overhead = np.zeros(self.num_users)
        if start:
            st, overhead = self._frame(st)
        rate = self.rates(st)
        share = compute_shares(action[:, 1], st["assoc"], self.num_bs)
        infer = inference_delay(action[:, 0], rate, share, p)
        delay = float(np.mean(infer + overhead))
        weights = area_weights(st["mob"]["pos"], p)
        xe, ye = sample(self.rng, task_at(st["t"], p), weights, self.eval_samples, p)
        acc = accuracy(st["models"], xe, ye)
        info = {"delay": delay, "inference_delay": infer, "overhead": overhead,
                "accuracy": acc, "mean_accuracy": float(acc.mean()),
                "predicted_acc": st["predicted_acc"], "retrained": st["retrained"] & start,
                "frame_start": bool(start), "assoc": st["assoc"]}
        self.state = st = dict(st, mob=waypoint_step(self.rng, st["mob"], p),
                               fading=self.rng.exponential(size=st["fading"].shape),
                               t=st["t"] + 1)
        obs = self.observe()
        done = st["t"] >= p["episode_length"]
        if done:
            info["final_observation"] = obs
            obs = self.reset_from()
        return obs, -delay / p["delay_scale"], done, info

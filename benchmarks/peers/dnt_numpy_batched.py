"""Peer (b) of ``bench_dnt``: the NumPy + SciPy reference of a ``dnt-sync-v0`` step batched
over B twins (``tests/envs/dnt_numpy_reference.py`` extended with a leading twin axis; float64,
like the reference).

Shapes: B twins, M BSs, U users, N RBs, K history slots; positions in m, rates in bit/s. Every
array operation runs on ``[B, ...]`` arrays in one call. What NumPy/SciPy cannot batch stays a
loop: the iterative per-BS matching, one ``scipy.optimize.linear_sum_assignment`` per twin and
BS (BSs in order, each seeing the interference of those before it, as in the reference). The
predictor is the reference's, run once on the users of all twins side by side (the GRU: one
matmul per layer and history slot for all B U users). Reference functions that take a leading
batch axis are reused (``_rate``, the predictors, ``flat_mask`` and ``serve_all_action`` on
flattened BSs, ``reset``); the slot, the observation and the random walk are written here for
``[B, ...]`` arrays.

:class:`BatchedEnv` is ``ReferenceEnv`` for B twins stepping in lockstep (one slot counter),
drawing per twin what the reference draws, in the same order; :func:`check_against_reference`
feeds the same draws to both and asserts that they agree.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.optimize
from peers import dnt_numpy

ref = dnt_numpy.ref

__all__ = ["BatchedEnv", "check_against_reference", "measure", "ref"]


def distances(pos, bs_xy) -> np.ndarray:
    """``pos [B, U, 2]``, ``bs_xy [M, 2]`` (m) -> ``[B, M, U]`` (m)."""
    return np.linalg.norm(pos[:, None, :, :] - bs_xy[None, :, None, :], axis=-1)


def batched_predictor(one_twin):
    """A one-twin predictor ``[K, U, 2] -> [U, 2]`` run on all twins' users at once:
    ``history [B, K, U, 2] -> [B, U, 2]``."""

    def predict(history):
        num_twins, k, num_users, _ = history.shape
        flat = np.moveaxis(history, 0, 1).reshape(k, num_twins * num_users, 2)
        return one_twin(flat).reshape(num_twins, num_users, 2)

    return predict


def decode(action, num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat actions ``[B, M]`` -> ``update [B, M]``, ``serve [B, M, U]`` (out of range = 0)."""
    action = np.asarray(action, np.int64)
    action = np.where((action >= 0) & (action < 2 ** (num_users + 1)), action, 0)
    return (action & 1) == 1, ((action[..., None] >> np.arange(1, num_users + 1)) & 1) == 1


def serve_all_action(features: np.ndarray, num_users: int) -> np.ndarray:
    """The benchmark's policy for B twins: ``features [B, M, F]`` -> flat actions ``[B, M]``."""
    flat = dnt_numpy.serve_all_action(features.reshape(-1, features.shape[-1]), num_users)
    return flat.reshape(features.shape[:2])


def _allocate(gain, serve, reserved, power, noise, bw) -> np.ndarray:
    """The iterative per-BS Hungarian allocation ``alloc [B, U, M, N]`` (0/1) of gains
    ``gain [B, U, M, N]``, ``serve [B, M, U]``, ``reserved [B, M, N]``."""
    num_twins, num_users, num_bs, num_rbs = gain.shape
    alloc = np.zeros(gain.shape)
    interference = np.zeros((num_twins, num_users, num_rbs))
    for m in range(num_bs):
        rate = ref._rate(bw, power * gain[:, :, m] / (interference + noise))  # [B, U, N]
        allowed = serve[:, m, :, None] & ~reserved[:, m, None, :]
        value = np.where(allowed, rate, -1e9)
        for b in range(num_twins):
            rows, cols = scipy.optimize.linear_sum_assignment(value[b], maximize=True)
            keep = allowed[b, rows, cols]
            alloc[b, rows[keep], m, cols[keep]] = 1.0
        interference += power * gain[:, :, m] * alloc[:, :, m].max(axis=1)[:, None, :]
    return alloc


def slot(pos, prediction, fading, uplink_fading, update, serve, p) -> dict:
    """The reference's ``slot`` for B twins: ``pos``, ``prediction [B, U, 2]``, ``fading
    [B, U, M, N]``, ``uplink_fading [B, M, N]``, ``update [B, M]``, ``serve [B, M, U]``; the
    same keys, each with a leading twin axis (``team_reward``, ``twin_error`` ``[B]``)."""
    num_twins, num_bs, num_users = serve.shape
    num_rbs = fading.shape[-1]
    dist = distances(pos, p["bs_xy"])
    cov = dist <= p["coverage_radius"]
    serve = serve & cov
    gain = fading * np.swapaxes(np.maximum(dist, p["min_distance"]) ** -2.0, 1, 2)[..., None]
    d_up = np.linalg.norm(p["bs_xy"] - p["cloud_xy"], axis=-1)
    g_up = uplink_fading * np.maximum(d_up, p["min_distance"])[:, None] ** -2.0  # [B, M, N]
    noise = p["noise_density"] * p["bandwidth"]
    power, bw = p["tx_power"], p["bandwidth"]
    reserved = update[..., None] & (np.arange(num_rbs) == g_up.argmax(-1)[..., None])
    update_rate = np.where(update, ref._rate(bw, power * g_up.max(-1) / noise), 0.0)
    alloc = _allocate(gain, serve, reserved, power, noise, bw)

    rx = power * gain
    heard = rx * alloc.max(axis=1)[:, None]  # [B, U, M, N]: what each transmitting BS sends
    sinr = np.zeros_like(rx)
    for m in range(num_bs):
        others = sum(heard[:, :, o] for o in range(num_bs) if o != m)
        sinr[:, :, m] = alloc[:, :, m] * rx[:, :, m] / (others + noise)
    link_rate = alloc * ref._rate(bw, sinr)
    rates = link_rate.sum(axis=(2, 3))
    rate_bs = link_rate.sum(axis=(1, 3))

    update_ok = update & (update_rate * p["delay_threshold"] >= p["update_size"])
    exact = (cov & update_ok[..., None]).any(axis=1)  # [B, U]
    twin = np.where(exact[..., None], pos, prediction)
    user_error = ((pos - twin) ** 2).sum(-1)
    twin_error = user_error.sum(-1)

    n_serving = serve.sum(axis=1)  # [B, U]
    overlap = n_serving > 1
    served_by = np.where(n_serving == 0, -1, np.where(overlap, -2, serve.argmax(axis=1)))
    w = (1.0 - p["eps"]) / num_users
    team = np.where(overlap.any(-1), p["rho"] * overlap.sum(-1),
                    -w * twin_error + p["eps"] * rates.sum(-1))
    reward = (-w * np.where(cov, user_error[:, None], 0.0).sum(-1) + p["eps"] * rate_bs
              + p["rho"] * (serve & overlap[:, None]).sum(-1))
    rb_user = np.where(alloc.any(axis=1), alloc.argmax(axis=1), -1)  # [B, M, N]
    rb_user[reserved] = -2
    return {
        "serve": serve, "update_ok": update_ok, "update_rate": update_rate, "alloc": alloc,
        "rb_user": rb_user, "rates": rates, "rate_bs": rate_bs, "served_by": served_by,
        "twin": twin, "exact": exact, "user_error": user_error, "twin_error": twin_error,
        "reward": reward, "team_reward": team, "reserved": reserved,
    }


def features(pos, stale, last_update, since_update, p) -> np.ndarray:
    """``[B, M, 5U + 2 + M]`` observation of B twins: ``pos [B, U, 2]``, ``stale [B, U]``,
    ``last_update``, ``since_update [B, M]`` (the reference's ``features``)."""
    num_twins, num_bs = pos.shape[0], p["bs_xy"].shape[0]
    radius = p["coverage_radius"]
    dist = distances(pos, p["bs_xy"])
    cov = dist <= radius
    rel = np.clip((pos[:, None] - p["bs_xy"][None, :, None]) / radius, -1, 1) * cov[..., None]
    log_gain = np.log(radius / np.maximum(dist, p["min_distance"])) / np.log(radius)
    log_gain = np.clip(log_gain, 0.0, 1.0) * cov
    stale_f = np.minimum(stale, ref.STALE_CLIP) / ref.STALE_CLIP
    since_f = np.minimum(since_update, ref.STALE_CLIP) / ref.STALE_CLIP
    return np.concatenate([
        cov.astype(float), rel[..., 0], rel[..., 1],
        np.broadcast_to(stale_f[:, None], cov.shape), log_gain,
        np.asarray(last_update, float)[..., None], since_f[..., None],
        np.broadcast_to(np.eye(num_bs), (num_twins, num_bs, num_bs)),
    ], axis=-1)


def flat_mask(cov) -> np.ndarray:
    """``cov [B, M, U]`` -> ``[B, M, 2^(U+1)]`` (the reference's ``flat_mask`` per BS)."""
    return ref.flat_mask(cov.reshape(-1, cov.shape[-1])).reshape(*cov.shape[:2], -1)


class BatchedEnv:
    """``ReferenceEnv`` for B twins: ``reset(rng, B) -> state`` (dict of ``[B, ...]`` arrays,
    ``t`` shared) and ``step(rng, state, action [B, M]) -> (features [B, M, F], mask,
    state, reward [B, M], team_reward [B], info)``, ``info`` the :func:`slot` dict. ``rng``
    draws ``exponential`` and ``random`` as the reference does for each twin, with a leading
    twin axis. Auto-reset is left out, as in the reference."""

    def __init__(self, params, num_rbs: int, history_len: int, predictor):
        self.one = ref.ReferenceEnv(params, num_rbs, history_len, predictor)
        self.p = self.one.p
        self.num_bs, self.num_users, self.num_rbs = (self.one.num_bs, self.one.num_users,
                                                     num_rbs)
        self.predictor = batched_predictor(predictor)

    def reset(self, rng, num_twins: int) -> dict:
        """``num_twins`` reference resets stacked (not timed by the benchmark)."""
        return stack([self.one.reset(rng) for _ in range(num_twins)])

    def observe(self, state: dict) -> np.ndarray:
        """The features ``[B, M, F]`` of ``state``."""
        return features(state["pos"], state["stale"], state["last"], state["since"], self.p)

    def step(self, rng, state: dict, action):
        """One slot of every twin under flat actions ``[B, M]`` (class docstring)."""
        u, m, n = self.num_users, self.num_bs, self.num_rbs
        num_twins = state["pos"].shape[0]
        e = rng.exponential(size=(num_twins, u + 1, m, n))
        update, serve = decode(action, u)
        pred = self.predictor(state["history"])
        res = slot(state["pos"], pred, e[:, :u], e[:, u], update, serve, self.p)
        move = (rng.random((num_twins, u, 1)) >= self.one.cdf[:, :4]).sum(-1)
        pos = np.clip(state["pos"] + self.p["step_length"] * ref.MOVES[move],
                      self.p["area_min"], self.p["area_max"])
        new = {
            "pos": pos,
            "history": np.concatenate([state["history"][:, 1:], res["twin"][:, None]], axis=1),
            "stale": np.where(res["exact"], 0, state["stale"] + 1),
            "last": res["update_ok"],
            "since": np.where(res["update_ok"], 0, state["since"] + 1),
            "t": state["t"] + 1,
        }
        cov = distances(pos, self.p["bs_xy"]) <= self.p["coverage_radius"]
        return (self.observe(new), flat_mask(cov), new, res["reward"], res["team_reward"],
                res)


def stack(states: list[dict]) -> dict:
    """Reference states of twins at the same slot -> one batched state."""
    if len({s["t"] for s in states}) != 1:
        raise ValueError("batched twins step in lockstep: all states need the same t")
    return {k: (states[0][k] if k == "t" else np.stack([s[k] for s in states]))
            for k in states[0]}


class Replay:
    """Stands in for a ``numpy.random.Generator``: returns the given arrays in turn."""

    def __init__(self, *arrays):
        self.arrays = list(arrays)

    def _next(self, size):
        out = self.arrays.pop(0)
        if out.shape != tuple(size):
            raise ValueError(f"replayed draw of shape {out.shape}, asked for {size}")
        return out

    def exponential(self, size):
        return self._next(size)

    def random(self, size):
        return self._next(size)

    def standard_normal(self, size):
        return self._next(size)


def check_against_reference(params, num_rbs: int, history_len: int, predictor,
                            num_twins: int = 3, num_steps: int = 3, seed: int = 0) -> None:
    """Step ``num_twins`` twins batched and one at a time through the reference on the same
    draws; every slot output (rates, allocation, rewards, ...), feature, mask and state must
    agree (floats to 1e-9 relative). Raises ``AssertionError`` otherwise."""
    env = BatchedEnv(params, num_rbs, history_len, predictor)
    one = env.one
    rng = np.random.default_rng(seed)
    singles = [one.reset(rng) for _ in range(num_twins)]
    state = stack(singles)
    feats = env.observe(state)
    u, m, n = env.num_users, env.num_bs, num_rbs
    for _ in range(num_steps):
        action = serve_all_action(feats, u)
        e, r = rng.exponential(size=(num_twins, u + 1, m, n)), rng.random((num_twins, u, 1))
        update, serve = decode(action, u)
        feats, mask, state, reward, team, info = env.step(Replay(e, r), state, action)
        for i, single in enumerate(singles):
            want = ref.slot(single["pos"], predictor(single["history"]), e[i, :u], e[i, u],
                            update[i], serve[i], env.p)
            for key, value in want.items():
                _agree(info[key][i], value, key)
            f1, m1, singles[i], rew1, team1 = one.step(Replay(e[i], r[i]), single, action[i])
            for key, got, value in (("features", feats[i], f1), ("mask", mask[i], m1),
                                    ("reward", reward[i], rew1), ("team", team[i], team1)):
                _agree(got, value, key)
            for key, value in singles[i].items():
                _agree(state[key] if key == "t" else state[key][i], value, key)


def _agree(got, want, name: str) -> None:
    """Floats to 1e-9 (relative, absolute), everything else exactly."""
    if np.issubdtype(np.asarray(want).dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)

def measure(params, num_rbs: int, history_len: int, predictor, num_twins: int,
            num_steps: int, seed: int = 0) -> dict:
    """Run ``num_steps`` batched steps of ``num_twins`` twins (policy "update and serve every
    covered user"); returns seconds and twin-steps/s (the reset is not timed)."""
    env = BatchedEnv(params, num_rbs, history_len, predictor)
    rng = np.random.default_rng(seed)
    state = env.reset(rng, num_twins)
    feats = env.observe(state)
    t0 = time.perf_counter()
    for _ in range(num_steps):
        action = serve_all_action(feats, env.num_users)
        feats, _, state, _, _, _ = env.step(rng, state, action)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "steps": num_steps, "twins": num_twins,
            "steps_per_s": num_twins * num_steps / seconds}

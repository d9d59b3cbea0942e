"""Peer (b) of ``bench_edge``: the NumPy + SciPy reference of ``edge-retrain-v0``
(``tests/envs/edge_numpy_reference.py``) batched over B twins, in float64 like the reference.

Sizes: B twins, U users, M BSs (= task areas), C classes, D features, H hidden units; positions
in m, rates in bit/s, times in s. The twins step in lockstep (one slot counter: every twin
starts its frames on the same slots). Every array operation runs once for all twins: the
users of all twins are stacked on one axis of ``B U`` rows, twin-major (radio, delays, samples,
the users' MLPs - forward passes and gradient steps of every user that retrains, all at once -,
the KL mix counts, the twin's generated samples, padded to a fixed length and masked), and the
B generators are one generator over ``B M`` areas. What stays a loop over twins is the
association: per twin, the LP relaxation by ``scipy.optimize.linprog`` (HiGHS) and the
reference's rounding and local search (``ref.associate``). Reference functions that take
stacked rows are reused as they are; the rest (generation, variance, observation) is written
here for stacked rows. Only the env's default configuration: ``retraining="incremental"``,
``association="round"``.

Randomness goes through a stream object: :class:`OneStream` (one ``numpy.random.Generator``
for all twins, the benchmark) or :class:`TwinStreams` (one Generator per twin, drawing for each
twin what the reference draws, in the reference's order), so :func:`check_against_reference`
steps the batched twins and the reference's on the same draws.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
from peers.dnt_numpy_batched import Replay

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "envs"))

import edge_numpy_reference as ref  # noqa: E402

__all__ = ["BatchedEnv", "OneStream", "TwinStreams", "check_against_reference", "measure",
           "ref"]


# -------------------------------------------------------------------------------- randomness
class OneStream:
    """All draws from one ``numpy.random.Generator``, one call per kind for all rows."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def on(self, rows):
        """A generator for draws whose first axis is ``rows`` (the twin of each row)."""
        return self.rng

    def ragged(self, rows, lengths, n: int, dim: int):
        """A generator for the twin's samples of each row (uniforms ``[K, n]``, then normals
        ``[K, n, dim]``; only the first ``lengths[k]`` of row k are used)."""
        return self.rng


class TwinStreams:
    """One Generator per twin, drawn as the reference draws for that twin alone."""

    def __init__(self, rngs: list):
        self.rngs = rngs

    def on(self, rows):
        """A generator-like for draws whose first axis is ``rows`` (the twin of each row)."""
        return _Rows(self.rngs, np.asarray(rows))

    def ragged(self, rows, lengths, n: int, dim: int):
        """The reference's order: for each row, ``lengths`` uniforms then ``lengths x dim``
        normals from its twin's Generator; padded to ``n`` and replayed."""
        u, z = np.zeros((len(rows), n)), np.zeros((len(rows), n, dim))
        for k, (b, length) in enumerate(zip(rows, lengths, strict=True)):
            u[k, :length] = self.rngs[b].random(length)
            z[k, :length] = self.rngs[b].standard_normal((length, dim))
        return Replay(u, z)


class _Rows:
    """Generator-like: a draw of shape ``[K, ...]`` takes row k from the Generator of twin
    ``rows[k]`` (rows sorted by twin, each twin's rows drawn in one call)."""

    def __init__(self, rngs, rows):
        self.rngs, self.rows = rngs, rows

    def _draw(self, kind: str, size) -> np.ndarray:
        out = np.empty(size)
        for b in np.unique(self.rows):
            mine = self.rows == b
            out[mine] = getattr(self.rngs[b], kind)(size=(int(mine.sum()), *size[1:]))
        return out

    def random(self, size):
        return self._draw("random", size)

    def standard_normal(self, size):
        return self._draw("standard_normal", size)

    def exponential(self, size):
        return self._draw("exponential", size)


# ------------------------------------------------------------------------------ batched pieces
def variance(gen, num_twins: int) -> np.ndarray:
    """``[B, D]`` pooled within-cell variance of each twin's generator (the reference's
    ``generator_variance``; ``gen`` over ``B M`` areas)."""
    count = gen["count"].reshape(num_twins, -1)
    dof = count.sum(-1) - (count > 0).sum(-1)
    m2 = gen["m2"].reshape(num_twins, -1, gen["m2"].shape[-1]).sum(1)
    return np.where(dof[:, None] > 0, m2 / np.maximum(dof, 1.0)[:, None], 1.0)


def generate(stream, gen, rows, weights, counts, num_areas: int, n: int):
    """The reference's ``generate`` for K rows at once, padded to ``n`` samples.

    ``rows [K]`` twin of each row, ``weights [K, M]``, ``counts [K, C]`` (each summing to at
    most ``n``); ``gen`` over ``B M`` areas. Returns ``x [K, n, D]``, ``y [K, n]`` and
    ``valid [K, n]`` (the first ``sum`` of the kept counts of each row).
    """
    num_classes, dim = gen["mean"].shape[1:]
    count = gen["count"].reshape(-1, num_areas, num_classes)[rows]  # [K, M, C]
    covered = ((weights[:, :, None] > 0) & (count > 0)).any(axis=1)
    ends = np.cumsum(np.where(covered, counts, 0), axis=-1)  # [K, C]
    slots = np.arange(n)
    y = np.minimum((slots[None, :, None] >= ends[:, None, :]).sum(-1), num_classes - 1)
    valid = slots[None, :] < ends[:, -1:]
    prior = count / np.maximum(count.sum(-1, keepdims=True), 1.0)
    post = np.swapaxes(weights[:, :, None] * prior, 1, 2)  # [K, C, M]
    draws = stream.ragged(rows, valid.sum(-1), n, dim)
    area = ref._categorical(draws, post[np.arange(len(rows))[:, None], y])
    std = np.sqrt(variance(gen, len(gen["count"]) // num_areas))[rows]
    x = (gen["mean"][rows[:, None] * num_areas + area, y]
         + std[:, None, :] * draws.standard_normal((len(rows), n, dim)))
    return x, y, valid


def class_counts(y, num_classes: int) -> np.ndarray:
    """``[K, C]`` label counts of ``y [K, n]``."""
    return (y[..., None] == np.arange(num_classes)).sum(-2)


def _concat(values):
    """Twins' states (dicts of arrays, the slot ``t``) -> one state of stacked rows."""
    if isinstance(values[0], dict):
        return {k: _concat([v[k] for v in values]) for k in values[0]}
    if isinstance(values[0], int):
        if len(set(values)) != 1:
            raise ValueError("batched twins step in lockstep: all states need the same t")
        return values[0]
    return np.concatenate(values)


# ------------------------------------------------------------------------------------ the env
class BatchedEnv:
    """B ``edge-retrain-v0`` twins in NumPy/SciPy (module docstring).

    ``BatchedEnv(env)`` takes a JAX ``EdgeRetrainEnv`` (its static sizes and default params,
    or ``params``: a JAX ``EdgeParams`` or the reference's dict); ``load(states)`` takes the
    reference states of B twins at the same slot; ``step(stream, action [B, U, 2])`` ->
    ``(obs [B, F], reward [B], done, info)``, ``info`` per twin ``[B]`` or per user ``[B, U]``
    (the reference's keys); auto-resets like the reference.
    """

    def __init__(self, env, params=None):
        self.one = ref.ReferenceEnv.from_env(env, params)
        if self.one.retraining != "incremental" or self.one.association != "round":
            raise ValueError("the batched peer covers retraining='incremental', "
                             "association='round' only")
        self.p = self.one.p
        self.num_bs, self.num_users = self.one.num_bs, self.one.num_users
        self.state: dict = {}
        self.rows = np.zeros(0, np.int64)

    @property
    def num_twins(self) -> int:
        """B."""
        return len(self.rows) // self.num_users

    def load(self, states: list[dict]) -> np.ndarray:
        """Start from the reference states of B twins (same slot); returns the observation."""
        self.state = _concat(states)
        self.rows = np.repeat(np.arange(len(states)), self.num_users)
        return self.observe()

    def twin_state(self, i: int) -> dict:
        """Twin ``i``'s state in the reference's layout."""
        u, m = slice(i * self.num_users, (i + 1) * self.num_users), slice(i * self.num_bs,
                                                                          (i + 1) * self.num_bs)
        st = {k: v[u] for k, v in self.state.items() if isinstance(v, np.ndarray)}
        st.update(mob={k: v[u] for k, v in self.state["mob"].items()},
                  models={k: v[u] for k, v in self.state["models"].items()},
                  gen={k: v[m] for k, v in self.state["gen"].items()}, t=self.state["t"])
        return st

    def _per_bs(self, assoc) -> np.ndarray:
        """BS indices made distinct across twins (``b M + m``) for per-BS sums of all twins."""
        return assoc + self.rows * self.num_bs

    def rates(self, st=None) -> np.ndarray:
        """``[B U]`` bit/s to the serving BS."""
        st = self.state if st is None else st
        rates = ref.uplink_rates(ref.distances(st["mob"]["pos"], self.p["bs_xy"]), st["fading"],
                                 self.p)
        return rates[np.arange(len(self.rows)), st["assoc"]]

    def balanced_action(self) -> np.ndarray:
        """The ``balanced`` policy of every twin: ``[B, U, 2]``."""
        action = ref.balanced_action(self.rates(), self._per_bs(self.state["assoc"]),
                                     self.num_twins * self.num_bs, self.p)
        return action.reshape(self.num_twins, self.num_users, 2)

    def observe(self) -> np.ndarray:
        """``[B, U (5 + M) + 2]``: the reference's observation of every twin."""
        st, p, b, m = self.state, self.p, self.num_twins, self.num_bs
        rate = self.rates()
        local, offload_all = ref.slot_times(rate, np.ones_like(rate), p)
        upload = ref.upload_time(p["samples_per_slot"], rate, p)
        onehot = np.eye(m)[st["assoc"]]
        users_on = onehot.reshape(b, -1, m).sum(1)[self.rows]  # [B U, M]
        load = (onehot * users_on).sum(-1) / self.num_users
        user = np.stack([rate / p["bandwidth"] / 10.0, upload / p["delay_scale"],
                         local / p["delay_scale"], (offload_all - upload) / p["delay_scale"],
                         load], axis=-1)
        t, frame = st["t"], p["frame_length"]
        glob = np.broadcast_to([(t % frame) / frame, t / p["episode_length"]], (b, 2))
        feats = np.concatenate([np.concatenate([user, onehot], -1).reshape(b, -1), glob], -1)
        return np.clip(feats, 0.0, ref.OBS_CLIP)

    def _associate(self, pos) -> np.ndarray:
        """``[B U]`` serving BS: the reference's LP + rounding, one twin after the other."""
        cost = ref.association_cost(pos, self.p).reshape(self.num_twins, self.num_users, -1)
        capacity = np.full(self.num_bs, float(self.p["max_users_per_bs"]))
        return np.concatenate([ref.associate(c, np.ones_like(c), capacity) for c in cost])

    def _predict_accuracy(self, stream, models, gen, mix, weights, xp, yp) -> np.ndarray:
        """``[B U]`` accuracy of every user's model on its probes ``xp [B U, P, D]`` plus
        ``eval_samples`` twin samples in the KL-optimal mix of ``mix [B U, C]``."""
        one, rows = self.one, self.rows
        counts = ref.kl_mix(np.zeros_like(mix), mix, one.eval_samples)
        xg, yg, valid = generate(stream, gen, rows, weights, counts, self.num_bs,
                                 one.eval_samples)
        w = np.concatenate([np.ones(yp.shape), valid], axis=-1)
        return ref.accuracy(models, np.concatenate([xp, xg], 1), np.concatenate([yp, yg], 1),
                            w)

    def _retrain(self, stream, models, gen, mix, task, weights, rows) -> dict:
        """Incremental retraining of the users ``rows`` (their twins) given: real samples plus
        KL-mixed generated ones, ``incremental_steps`` gradient steps, all at once."""
        one = self.one
        xr, yr = ref.sample(stream.on(rows), task, weights, one.real_samples, self.p)
        counts = ref.kl_mix(class_counts(yr, one.num_classes), mix, one.generated_samples)
        xg, yg, valid = generate(stream, gen, rows, weights, counts, self.num_bs,
                                 one.generated_samples)
        w = np.concatenate([np.ones(yr.shape), valid], axis=-1)
        return ref.sgd_steps(models, np.concatenate([xr, xg], 1), np.concatenate([yr, yg], 1),
                             one.incremental_steps, self.p["lr"], w)

    def _frame(self, stream, st) -> tuple[dict, np.ndarray]:
        """Frame start of every twin: probes + generator refit, association, prediction,
        retraining (the reference's ``_frame``)."""
        p, one, rows = self.p, self.one, self.rows
        pos = st["mob"]["pos"]
        task = ref.task_at(st["t"], p)
        weights = ref.area_weights(pos, p)
        area = rows * self.num_bs + np.argmax(weights, axis=-1)
        xp, yp = ref.sample(stream.on(rows), task, weights, one.probe_samples, p)
        gen = ref.generator_forget(st["gen"], p["forget"])
        gen = ref.generator_update(gen, xp.reshape(-1, one.dim), yp.ravel(),
                                   np.repeat(area, one.probe_samples))

        assoc = self._associate(pos)
        rate = ref.uplink_rates(ref.distances(pos, p["bs_xy"]), st["fading"], p)
        rate = rate[np.arange(len(rows)), assoc]
        overhead = ref.upload_time(one.probe_samples, rate, p)
        overhead += np.where((assoc != st["assoc"]) & (st["t"] > 0), p["handover_delay"], 0.0)

        shape = (self.num_twins, self.num_users, -1)
        mix = ref.twin_mix({"count": gen["count"].reshape(self.num_twins, self.num_bs, -1)},
                           weights.reshape(shape)).reshape(len(rows), -1)
        predicted = self._predict_accuracy(stream, st["models"], gen, mix, weights, xp, yp)
        need = predicted < p["acc_threshold"]
        models = st["models"]
        users = np.flatnonzero(need)
        if users.size:
            new = self._retrain(stream, {k: v[users] for k, v in models.items()}, gen,
                                mix[users], task, weights[users], rows[users])
            models = {k: v.copy() for k, v in models.items()}
            for k in models:
                models[k][users] = new[k]
            n_tot = one.real_samples + one.generated_samples
            # the reference's retrain_time for one user alone, times the users sharing the
            # twin's server
            alone = ref.retrain_time(one.incremental_steps * n_tot,
                                     float(one.generated_samples), np.ones(1, bool), p)
            sharing = np.maximum(need.reshape(self.num_twins, -1).sum(1), 1)[rows]
            overhead += np.where(need, ref.upload_time(one.real_samples, rate, p), 0.0)
            overhead += np.where(need, alone * sharing, 0.0)
        st = dict(st, assoc=assoc, models=models, gen=gen, predicted_acc=predicted,
                  retrained=need)
        return st, overhead

    def reset_from(self, stream) -> np.ndarray:
        """Every twin's next episode (users placed afresh, new fading, slot 0)."""
        rows = self.rows
        mob = ref.waypoint_init(stream.on(rows), len(rows), self.p)
        dist = ref.distances(mob["pos"], self.p["bs_xy"])
        self.state = dict(self.state, mob=mob, fading=stream.on(rows).exponential(size=dist.shape),
                          assoc=np.argmin(dist, axis=-1), t=0,
                          retrained=np.zeros(len(rows), bool))
        return self.observe()

    def step(self, stream, action) -> tuple[np.ndarray, np.ndarray, bool, dict]:
        """One slot of every twin under ``action [B, U, 2]`` (NaN -> 0, clipped to [0, 1])."""
        p, one, rows, b = self.p, self.one, self.rows, self.num_twins
        action = np.clip(np.nan_to_num(np.asarray(action, np.float64), nan=0.0), 0.0, 1.0)
        action = action.reshape(-1, 2)
        st = self.state
        start = st["t"] % p["frame_length"] == 0
        overhead = np.zeros(len(rows))
        if start:
            st, overhead = self._frame(stream, st)
        rate = self.rates(st)
        share = ref.compute_shares(action[:, 1], self._per_bs(st["assoc"]), b * self.num_bs)
        infer = ref.inference_delay(action[:, 0], rate, share, p)
        delay = (infer + overhead).reshape(b, -1).mean(1)
        weights = ref.area_weights(st["mob"]["pos"], p)
        xe, ye = ref.sample(stream.on(rows), ref.task_at(st["t"], p), weights,
                            one.eval_samples, p)
        acc = ref.accuracy(st["models"], xe, ye)
        per_user = {"inference_delay": infer, "overhead": overhead, "accuracy": acc,
                    "predicted_acc": st["predicted_acc"], "retrained": st["retrained"] & start,
                    "assoc": st["assoc"]}
        info = {k: v.reshape(b, -1) for k, v in per_user.items()}
        info.update(delay=delay, mean_accuracy=info["accuracy"].mean(1), frame_start=start)
        self.state = dict(st, mob=ref.waypoint_step(stream.on(rows), st["mob"], p),
                          fading=stream.on(rows).exponential(size=st["fading"].shape),
                          t=st["t"] + 1)
        obs = self.observe()
        done = self.state["t"] >= p["episode_length"]
        if done:
            info["final_observation"] = obs
            obs = self.reset_from(stream)
        return obs, -delay / p["delay_scale"], done, info


# ------------------------------------------------------------------------ check and timing
def _agree(got, want, name: str) -> None:
    """Floats to 1e-9 (relative and absolute), everything else exactly; dicts by key."""
    if isinstance(want, dict):
        for k in want:
            _agree(got[k], want[k], f"{name}.{k}")
    elif np.issubdtype(np.asarray(want).dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def check_against_reference(env, num_twins: int = 3, num_steps: int = 13,
                            episode_length: int = 11) -> None:
    """Step ``num_twins`` twins batched and one at a time through the reference, on the same
    draws, from the reference's resets (seeds 0, 1, ...), under the ``balanced`` policy; the
    episode shortened to ``episode_length`` slots so that an auto-reset and frame starts in
    two episodes are covered. Observations, rewards, every info entry and the whole state must
    agree (floats to 1e-9). Raises ``AssertionError`` otherwise."""
    p = dict(ref.to_numpy(env.default_params), episode_length=episode_length)
    sims = [ref.ReferenceEnv.from_env(env, p) for _ in range(num_twins)]
    obs = [sim.reset(seed=i) for i, sim in enumerate(sims)]
    batched = BatchedEnv(env, p)
    stream = TwinStreams([copy.deepcopy(sim.rng) for sim in sims])
    _agree(batched.load([sim.state for sim in sims]), np.stack(obs), "reset observation")
    for t in range(num_steps):
        action = batched.balanced_action()
        obs, reward, done, info = batched.step(stream, action)
        for i, sim in enumerate(sims):
            obs1, reward1, done1, info1 = sim.step(action[i])
            assert done == done1, f"done at step {t}"
            _agree(obs[i], obs1, f"observation, step {t}")
            _agree(reward[i], reward1, f"reward, step {t}")
            for key, value in info1.items():
                _agree(info[key] if key == "frame_start" else info[key][i], value,
                       f"info {key}, step {t}")
            _agree(batched.twin_state(i), sim.state, f"state, step {t}")


def measure(env, states: list[dict], num_twins: int, num_steps: int, seed: int = 0) -> dict:
    """Run ``num_steps`` batched steps of ``num_twins`` twins under the ``balanced`` policy
    from slot 0; returns seconds and twin-steps/s. The twins start from the reference states
    ``states`` repeated in turn (their models and generators: training every twin's models
    from scratch is the reset, timed by neither side), each with users placed afresh
    (``reset_from``, not timed)."""
    batched = BatchedEnv(env)
    stream = OneStream(np.random.default_rng(seed))
    batched.load([copy.deepcopy(states[i % len(states)]) for i in range(num_twins)])
    batched.reset_from(stream)
    t0 = time.perf_counter()
    for _ in range(num_steps):
        batched.step(stream, batched.balanced_action())
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "steps": num_steps, "twins": num_twins,
            "steps_per_s": num_twins * num_steps / seconds}

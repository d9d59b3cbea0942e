"""``edge-retrain-v0``: two-timescale digital twin for edge inference and model retraining.

Reproduces the setting of Cong, Cheng, You, Huang, Wu, "Two-Timescale Digital Twin Assisted
Model Inference and Retraining over Wireless Network" (arXiv 2411.18329); parameters in
``PARAMS.md`` section 4. M = 3 BSs serve U = 10 users moving by random waypoint over three
areas whose data distributions differ (:mod:`dtwin_jax.envs.edge_retrain.learning`). Every
user owns a real classifier; its accuracy is measured on held-out samples of the user's
current distribution every slot. Each slot the user's inference workload is split between
the device and its BS (:mod:`dtwin_jax.envs.edge_retrain.physics`).

Two timescales:

* **Frame** (every ``frame_length`` slots; at the start of the step of a frame's first slot):
  the users upload ``probe_samples`` labelled samples to the twin (which refits its
  class-conditional generator, keeping a fraction ``forget`` of its history); users are
  associated by the LP relaxation of the capacitated assignment plus rounding (or branch and
  bound; :mod:`dtwin_jax.allocation.association_lp`), the cost being the upload time at the
  mean rate; the twin predicts each model's accuracy and retrains the models predicted below
  ``acc_threshold`` (``retraining`` below). The observation of that slot shows the previous
  frame's association (at an episode's start: the nearest BS).
* **Slot** (the agent's action): per user an offload fraction and a compute weight, applied
  to the association in force after the frame's decisions.

Episodes. ``reset`` builds a fresh system (every model trained from scratch on its user's
start area, the generator fitted on ``history_samples`` per area); an auto-reset
(``reset_from``) starts the next episode of the same system: users placed afresh, models and
the twin's history carried over.

``retraining`` (static) - the paper's scheme and its baselines:

    "incremental"  proposed: predicted accuracy on the probes plus ``eval_samples``
                   twin-generated samples of the twin's estimate of the user's class mix; a
                   retraining runs ``incremental_steps`` full-batch SGD steps from the current
                   model on ``real_samples`` fresh real samples plus ``generated_samples``
                   twin samples whose class mix minimises the KL divergence to that estimate
                   (:func:`dtwin_jax.envs.edge_retrain.kl_mix.kl_mix`).
    "real_only"    without the twin: accuracy predicted on the probes alone; retraining on
                   the ``real_samples`` real samples only.
    "full"         without incremental learning: as "incremental" to decide, but the model is
                   retrained from scratch on ``full_samples`` real samples for ``full_steps``.
    "none"         never retrain (a reference).

Delays (s; per user; the system delay of a slot is their mean): inference ``max(local,
offload)``; at frame starts an overhead: probe upload, handover (``handover_delay`` when the
BS changes), and for a retraining the upload of its real samples, generation of the twin
samples and the training passes on the twin's server (shared by the users retraining at once).
The deployed model's cost per sample is the nominal ``infer_flops`` (a MobileNet-size model);
the tiny classifier stands in for its accuracy.

Chosen where the paper is silent: areas centred on the BSs with soft membership; a 300 m
square, waypoint speeds 5-15 m/s, 1 s slots (mobility), 10 slots a frame, 100 an episode;
8 classes, 10 features; the constants of :meth:`EdgeRetrainEnv.default_params`.

Action (single agent): ``[U, 2]`` f32 in ``[0, 1]``: column 0 the fraction of the slot's
samples offloaded, column 1 the compute weight (u's share of its BS's compute is its weight
over the sum of the weights on that BS; equal shares when they are all 0). Illegal values
follow the platform's rule (NaN -> 0, then clipped).

Observation ``[U * (5 + M) + 2]`` f32 in ``[0, 10]``: per user (row-major)

    0           log2(1 + SNR) to its BS this slot / 10
    1           upload time of the slot's samples / delay_scale (clipped at 10)
    2           local compute time of the slot's samples / delay_scale (clipped)
    3           compute time of the samples on a whole BS / delay_scale (clipped)
    4           users on its BS / U
    [5, 5+M)    one-hot serving BS

then ``slot in frame / frame_length`` and ``t / episode_length``.

Reward ``-system delay / delay_scale``. ``info``: ``delay`` [] s (system delay),
``inference_delay`` [U] s, ``overhead`` [U] s, ``accuracy`` [U] (true, held-out),
``mean_accuracy`` [], ``predicted_acc`` [U] (of the latest frame decision), ``retrained``
[U] bool (in this slot), ``frame_start`` [] bool, ``assoc`` [U] int32 (in force this slot).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax._rng import classic_threefry
from dtwin_jax.allocation.association_lp import (
    branch_and_bound,
    lp_relaxation,
    round_association,
)
from dtwin_jax.envs.base import Environment, legal_action, tree_select
from dtwin_jax.envs.edge_retrain import learning, physics
from dtwin_jax.envs.edge_retrain.kl_mix import kl_mix
from dtwin_jax.envs.edge_retrain.types import EdgeParams, EdgeState
from dtwin_jax.envs.spaces import Box
from dtwin_jax.envs.wrappers.vector import any_in_batch
from dtwin_jax.mobility import RandomWaypoint

RETRAINING = ("incremental", "real_only", "full", "none")
ASSOCIATION = ("round", "bnb")
#: features per user before the one-hot BS
USER_FEATURES = 5
#: observation entries are clipped to [0, OBS_CLIP]
OBS_CLIP = 10.0


class EdgeRetrainEnv(Environment):
    """Two-timescale edge inference and retraining (see the module docstring).

    Args (all static):
        num_bs: M BSs (= areas of the data task).
        num_users: U users.
        retraining: ``"incremental"`` (default, the paper's), ``"real_only"``, ``"full"``,
            ``"none"``.
        association: ``"round"`` (LP relaxation + rounding, default) or ``"bnb"``.
        num_classes, dim, hidden: the task's classes, features and the classifier's width.
        probe_samples: labelled samples each user uploads to the twin per frame.
        real_samples, generated_samples: real and twin samples of an incremental retraining.
        full_samples, full_steps: real samples and SGD steps of a full (re)training (also the
            pre-training of every model at reset).
        incremental_steps: SGD steps of an incremental retraining.
        eval_samples: held-out samples measuring true accuracy per user and slot, and twin
            samples predicting it.
        history_samples: samples per area the twin's generator is fitted on at reset.
    """

    def __init__(
        self,
        num_bs: int = 3,
        num_users: int = 10,
        retraining: str = "incremental",
        association: str = "round",
        num_classes: int = learning.NUM_CLASSES,
        dim: int = learning.DIM,
        hidden: int = learning.HIDDEN,
        probe_samples: int = 8,
        real_samples: int = 16,
        generated_samples: int = 48,
        full_samples: int = 256,
        full_steps: int = 200,
        incremental_steps: int = 30,
        eval_samples: int = 64,
        history_samples: int = 64,
    ):
        self.num_bs = _checks.check_int("num_bs", num_bs, lo=1, hi=16)
        self.num_users = _checks.check_int("num_users", num_users, lo=1, hi=1024)
        self.retraining = _checks.check_choice("retraining", retraining, RETRAINING)
        self.association = _checks.check_choice("association", association, ASSOCIATION)
        self.num_classes = _checks.check_int("num_classes", num_classes, lo=2, hi=256)
        self.dim = _checks.check_int("dim", dim, lo=1, hi=1024)
        self.hidden = _checks.check_int("hidden", hidden, lo=1, hi=1024)
        self.probe_samples = _checks.check_int("probe_samples", probe_samples, lo=1, hi=4096)
        self.real_samples = _checks.check_int("real_samples", real_samples, lo=1, hi=4096)
        self.generated_samples = _checks.check_int("generated_samples", generated_samples,
                                                   lo=0, hi=4096)
        self.full_samples = _checks.check_int("full_samples", full_samples, lo=1, hi=65536)
        self.full_steps = _checks.check_int("full_steps", full_steps, lo=1, hi=100000)
        self.incremental_steps = _checks.check_int("incremental_steps", incremental_steps,
                                                   lo=1, hi=100000)
        self.eval_samples = _checks.check_int("eval_samples", eval_samples, lo=1, hi=65536)
        self.history_samples = _checks.check_int("history_samples", history_samples,
                                                 lo=0, hi=65536)
        self.walk = RandomWaypoint(self.num_users)

    # ------------------------------------------------------------------ params
    @property
    def default_params(self) -> EdgeParams:
        f32 = jnp.float32
        mob = self.walk.default_params.replace(
            area_max=jnp.asarray([300.0, 300.0], f32), speed_min=f32(5.0),
            speed_max=f32(15.0), pause_max=f32(5.0))
        return EdgeParams(
            bs_xy=jnp.asarray(_default_bs_xy(self.num_bs)),
            area_softness=f32(15.0),
            tx_power=f32(1e-4),  # -10 dBm
            noise_power=f32(1e-13),  # -100 dBm
            bandwidth=f32(1e6),
            pathloss_exp=f32(3.5),
            min_distance=f32(1.0),
            samples_per_slot=f32(10.0),
            bits_per_sample=f32(2e4),
            infer_flops=f32(3e8),
            local_flops=f32(1e11),
            bs_flops=f32(1e13),  # 50 GFLOP per 5 ms unit time
            twin_flops=f32(1e13),
            train_flops_factor=f32(3.0),
            gen_flops=f32(3e8),
            frame_length=jnp.int32(10),
            acc_threshold=f32(0.85),
            # one spare seat per BS, at most every user (1 BS or 1 user: U, not U + 1)
            max_users_per_bs=jnp.int32(min(-(-self.num_users // self.num_bs) + 1,
                                           self.num_users)),
            handover_delay=f32(0.02),
            lr=f32(0.1),
            forget=f32(0.8),
            episode_length=jnp.int32(100),
            shift_slot=jnp.int32(-1),
            delay_scale=f32(0.1),
            task=learning.default_task(0, self.num_bs, self.num_classes, self.dim),
            mobility=mob,
        )

    def param_components(self) -> dict:
        return {"mobility": self.walk}

    def check_params(self, params: EdgeParams, rules: Rules = CONCRETE) -> None:
        """Every field's rule (ranges in the messages); see :mod:`dtwin_jax._params`."""
        m, big = self.num_bs, 1e18
        rules.array("bs_xy", params.bs_xy, shape=(m, 2), lo=-1e6, hi=1e6)
        for name in ("area_softness", "tx_power", "noise_power", "bandwidth", "min_distance",
                     "samples_per_slot", "bits_per_sample", "infer_flops", "local_flops",
                     "bs_flops", "twin_flops", "delay_scale"):
            rules.array(name, getattr(params, name), shape=(), lo=0.0, hi=big, lo_open=True)
        rules.array("pathloss_exp", params.pathloss_exp, shape=(), lo=0.0, hi=10.0)
        rules.array("train_flops_factor", params.train_flops_factor, shape=(), lo=0.0,
                    hi=1e6)
        rules.array("gen_flops", params.gen_flops, shape=(), lo=0.0, hi=big)
        rules.array("handover_delay", params.handover_delay, shape=(), lo=0.0, hi=1e6)
        rules.array("acc_threshold", params.acc_threshold, shape=(), lo=0.0, hi=1.0)
        rules.array("lr", params.lr, shape=(), lo=0.0, hi=100.0, lo_open=True)
        rules.array("forget", params.forget, shape=(), lo=0.0, hi=1.0, lo_open=True)
        for name in ("frame_length", "episode_length"):
            rules.array(name, getattr(params, name), shape=(), lo=1, hi=2**31 - 1,
                        integer=True)
        rules.array("max_users_per_bs", params.max_users_per_bs, shape=(), lo=1,
                    hi=self.num_users, integer=True)
        rules.require(params.max_users_per_bs * m >= self.num_users,
                      f"max_users_per_bs * num_bs ({m}) must be >= num_users "
                      f"({self.num_users}); got max_users_per_bs = {{}}",
                      params.max_users_per_bs)
        rules.array("shift_slot", params.shift_slot, shape=(), lo=-1, hi=2**31 - 1,
                    integer=True)
        task = params.task
        c, d = self.num_classes, self.dim
        rules.array("task.class_means", task.class_means, shape=(c, d), lo=-1e6, hi=1e6)
        rules.array("task.area_priors", task.area_priors, shape=(m, c), lo=0.0, hi=1.0)
        rules.require(rules.xp.abs(task.area_priors.sum(-1) - 1.0) < 1e-4,
                      "task.area_priors rows must sum to 1; got sums {}",
                      task.area_priors.sum(-1))
        rules.array("task.area_shift", task.area_shift, shape=(m, d), lo=-1e6, hi=1e6)
        rules.array("task.noise_std", task.noise_std, shape=(), lo=0.0, hi=1e6)
        self.walk.check_params(params.mobility, rules)

    # ------------------------------------------------------------------ spaces
    @property
    def obs_dim(self) -> int:
        """Length of the flat observation: ``U * (5 + M) + 2`` (layout in the module docstring)."""
        return self.num_users * (USER_FEATURES + self.num_bs) + 2

    def observation_space(self, params=None) -> Box:
        return Box(0.0, OBS_CLIP, (self.obs_dim,))

    def action_space(self, params=None) -> Box:
        return Box(0.0, 1.0, (self.num_users, 2))

    # ------------------------------------------------------------------ pieces
    def area_weights(self, pos: jax.Array, params: EdgeParams) -> jax.Array:
        """``[U, M]``: every user's probability of drawing data from each area."""
        return jax.nn.softmax(-physics.distances(pos, params.bs_xy) / params.area_softness,
                              axis=-1)

    def task_at(self, t: jax.Array, params: EdgeParams) -> learning.TaskParams:
        """The data task in slot ``t``: after ``shift_slot`` area a has area a-1's data."""
        task = params.task
        shifted = (params.shift_slot >= 0) & (t >= params.shift_slot)
        roll = lambda x: jnp.where(shifted, jnp.roll(x, 1, axis=0), x)  # noqa: E731
        return task.replace(area_priors=roll(task.area_priors),
                            area_shift=roll(task.area_shift))

    def _sample_users(self, key, task, weights, n):
        """``n`` real samples of every user: x [U, n, D], y [U, n]."""
        keys = jax.random.split(key, self.num_users)
        return jax.vmap(learning.sample, (0, None, 0, None))(keys, task, weights, n)

    def _train_full(self, key, task, weights, params: EdgeParams):
        """Fresh models trained from scratch on ``full_samples`` real samples each (step size
        ``params.lr``)."""
        k_init, k_data = jax.random.split(key)
        x, y = self._sample_users(k_data, task, weights, self.full_samples)
        init = jax.vmap(learning.init_classifier, (0, None, None, None))(
            jax.random.split(k_init, self.num_users), self.dim, self.num_classes, self.hidden)
        return jax.vmap(lambda p, xx, yy: learning.sgd_steps(
            p, xx, yy, self.full_steps, params.lr))(init, x, y)

    def _associate(self, pos, params: EdgeParams) -> jax.Array:
        """``[U]`` int32: the capacitated association minimising the total upload time of the
        slot's samples at the mean rates (capacity ``max_users_per_bs``, always feasible)."""
        mean_rate = physics.uplink_rates(physics.distances(pos, params.bs_xy),
                                         jnp.ones((self.num_users, self.num_bs)), params)
        cost = params.samples_per_slot * params.bits_per_sample / mean_rate
        load = jnp.ones_like(cost)
        capacity = jnp.full((self.num_bs,), params.max_users_per_bs, jnp.float32)
        if self.association == "bnb":
            return branch_and_bound(cost, load, capacity).assoc
        assoc, _ = round_association(lp_relaxation(cost, load, capacity).x, cost, load,
                                     capacity)
        return assoc

    def _twin_mix(self, gen, weights) -> jax.Array:
        """``[U, C]``: the twin's estimate of every user's class mix (the generator's per-area
        class frequencies mixed by the user's area weights)."""
        return weights @ learning.generator_priors(gen)

    def _frame(self, key, state: EdgeState, params: EdgeParams) -> tuple[EdgeState, jax.Array]:
        """Frame-start decisions of the module docstring for the users at ``state``: the new
        state and every user's overhead delay ``[U]`` s in this slot."""
        k_probe, k_eval, k_real, k_gen, k_full = jax.random.split(key, 5)
        pos = state.mobility.pos
        task = self.task_at(state.t, params)
        weights = self.area_weights(pos, params)
        area = jnp.argmax(weights, axis=-1)  # the twin labels a user's samples by this area

        # twin sync: probes refit the generator (older history fades)
        xp, yp = self._sample_users(k_probe, task, weights, self.probe_samples)
        gen = state.generator
        gen = gen.replace(count=gen.count * params.forget, m2=gen.m2 * params.forget)
        probe_area = jnp.repeat(area, self.probe_samples)
        gen = learning.generator_update(gen, xp.reshape(-1, self.dim), yp.reshape(-1),
                                        probe_area)

        # association
        assoc = self._associate(pos, params)
        rate = physics.served_rate(
            physics.uplink_rates(physics.distances(pos, params.bs_xy), state.fading, params),
            assoc)
        overhead = physics.upload_time(self.probe_samples, rate, params)
        overhead += jnp.where((assoc != state.assoc) & (state.t > 0), params.handover_delay,
                              0.0)

        # predicted accuracy and the retraining decision
        mix = self._twin_mix(gen, weights)
        predicted = self._predict_accuracy(k_eval, state.models, gen, mix, weights, xp, yp)
        need = predicted < params.acc_threshold
        if self.retraining == "none":
            need = jnp.zeros_like(need)
            models = state.models
        else:
            models, passes, generated, real = self._retrain(
                k_real, k_gen, k_full, state.models, gen, mix, task, weights, params)
            models = jax.tree.map(
                lambda new, old: jnp.where(need.reshape((-1,) + (1,) * (new.ndim - 1)), new,
                                           old),
                models, state.models)
            overhead += jnp.where(need, physics.upload_time(real, rate, params), 0.0)
            overhead += physics.retrain_time(passes, generated, need, params)
        state = state.replace(assoc=assoc, models=models, generator=gen, predicted_acc=predicted,
                              retrained=need)
        return state, overhead

    def _predict_accuracy(self, key, models, gen, mix, weights, xp, yp) -> jax.Array:
        """``[U]``: accuracy on the probes, plus (with a twin) ``eval_samples`` twin samples
        of the estimated class mix."""
        probe_acc = jax.vmap(learning.accuracy)(models, xp, yp)
        if self.retraining == "real_only":
            return probe_acc
        n = self.eval_samples
        counts = jax.vmap(lambda p: kl_mix(jnp.zeros_like(p), p, n))(mix)
        keys = jax.random.split(key, self.num_users)
        xg, yg, valid = jax.vmap(learning.generate, (0, None, 0, 0, None))(
            keys, gen, weights, counts, n)
        x = jnp.concatenate([xp, xg], axis=1)
        y = jnp.concatenate([yp, yg], axis=1)
        w = jnp.concatenate([jnp.ones(yp.shape, bool), valid], axis=1)
        return jax.vmap(learning.accuracy)(models, x, y, w)

    def _retrain(self, k_real, k_gen, k_full, models, gen, mix, task, weights, params):
        """Retrained models of every user (the caller keeps those that need it), with the
        training sample passes, generated samples and real samples uploaded per user."""
        if self.retraining == "full":
            steps, n = self.full_steps, self.full_samples
            return self._train_full(k_full, task, weights, params), steps * n, 0.0, n
        xr, yr = self._sample_users(k_real, task, weights, self.real_samples)
        n_gen = self.generated_samples if self.retraining == "incremental" else 0
        if n_gen:
            real_counts = jax.vmap(
                lambda y: jnp.bincount(y, length=self.num_classes))(yr).astype(jnp.float32)
            counts = jax.vmap(lambda r, p: kl_mix(r, p, n_gen))(real_counts, mix)
            keys = jax.random.split(k_gen, self.num_users)
            xg, yg, valid = jax.vmap(learning.generate, (0, None, 0, 0, None))(
                keys, gen, weights, counts, n_gen)
            x = jnp.concatenate([xr, xg], axis=1)
            y = jnp.concatenate([yr, yg], axis=1)
            w = jnp.concatenate([jnp.ones(yr.shape, jnp.float32),
                                 valid.astype(jnp.float32)], axis=1)
        else:
            x, y, w = xr, yr, jnp.ones(yr.shape, jnp.float32)
        steps = self.incremental_steps
        new = jax.vmap(lambda p, xx, yy, ww: learning.sgd_steps(
            p, xx, yy, steps, params.lr, w=ww))(models, x, y, w)
        return new, steps * (self.real_samples + n_gen), n_gen, self.real_samples

    # ------------------------------------------------------------------ API
    @classic_threefry
    def reset_env(self, key, params: EdgeParams):
        """A fresh system: users placed, every model trained from scratch on its start area's
        data (``full_samples``, ``full_steps``), the twin's generator fitted on
        ``history_samples`` per area; users on their nearest BS until the first frame."""
        k_mob, k_hist, k_models, k_rest = jax.random.split(key, 4)
        mobility = self.walk.init(k_mob, params.mobility)
        task = self.task_at(jnp.int32(0), params)
        weights = self.area_weights(mobility.pos, params)
        gen = learning.generator_init(self.num_bs, self.num_classes, self.dim)
        if self.history_samples:
            keys = jax.random.split(k_hist, self.num_bs)
            xh, yh = jax.vmap(learning.sample, (0, None, 0, None))(
                keys, task, jnp.eye(self.num_bs), self.history_samples)
            areas = jnp.repeat(jnp.arange(self.num_bs), self.history_samples)
            gen = learning.generator_update(gen, xh.reshape(-1, self.dim), yh.reshape(-1),
                                            areas)
        u = self.num_users
        state = EdgeState(
            mobility=mobility,
            fading=jnp.ones((u, self.num_bs), jnp.float32),
            assoc=jnp.zeros(u, jnp.int32),
            models=self._train_full(k_models, task, weights, params),
            generator=gen,
            predicted_acc=jnp.ones(u, jnp.float32),
            retrained=jnp.zeros(u, bool),
            t=jnp.int32(0),
        )
        return self.reset_from(k_rest, state, params)

    @classic_threefry
    def reset_from(self, key, state: EdgeState, params: EdgeParams):
        """The next episode of a running system: users placed afresh (nearest BS until the
        first frame), new fading, slot 0; the models and the twin's generator carry over."""
        k_mob, k_fade = jax.random.split(key)
        mobility = self.walk.init(k_mob, params.mobility)
        dist = physics.distances(mobility.pos, params.bs_xy)
        state = state.replace(
            mobility=mobility,
            fading=jax.random.exponential(k_fade, dist.shape, jnp.float32),
            assoc=jnp.argmin(dist, axis=-1).astype(jnp.int32),
            retrained=jnp.zeros_like(state.retrained),
            t=jnp.int32(0),
        )
        return self.observe(state, params), state

    def rates(self, state: EdgeState, params: EdgeParams) -> jax.Array:
        """``[U]`` bit/s: every user's uplink rate to its BS in this slot."""
        rates = physics.uplink_rates(physics.distances(state.mobility.pos, params.bs_xy),
                                     state.fading, params)
        return physics.served_rate(rates, state.assoc)

    def observe(self, state: EdgeState, params: EdgeParams) -> jax.Array:
        """The observation of ``state`` (module docstring)."""
        rate = self.rates(state, params)
        scale = params.delay_scale
        local, offload_all = physics.workload_times(rate, jnp.ones_like(rate), params)
        upload = physics.upload_time(params.samples_per_slot, rate, params)
        onehot = jax.nn.one_hot(state.assoc, self.num_bs, dtype=jnp.float32)
        load = onehot @ onehot.sum(0) / self.num_users
        user = jnp.stack([
            rate / params.bandwidth / 10.0,  # log2(1 + SNR) / 10
            upload / scale,
            local / scale,
            (offload_all - upload) / scale,
            load,
        ], axis=-1)
        slot = (state.t % params.frame_length) / params.frame_length
        glob = jnp.stack([slot, state.t / params.episode_length]).astype(jnp.float32)
        feats = jnp.concatenate([jnp.concatenate([user, onehot], -1).reshape(-1), glob])
        return jnp.clip(feats, 0.0, OBS_CLIP)

    @classic_threefry
    def step_env(self, key, state: EdgeState, action, params: EdgeParams):
        action = legal_action(self.action_space(params), self.check_action(action, params))
        k_frame, k_acc, k_mob, k_fade = jax.random.split(key, 4)
        start = state.t % params.frame_length == 0
        zero = jnp.zeros(self.num_users, jnp.float32)
        state, overhead = jax.lax.cond(
            any_in_batch(start),  # frames start in step across a batch of twins: gate once
            lambda s: tree_select(start, self._frame(k_frame, s, params), (s, zero)),
            lambda s: (s, zero),
            state,
        )
        rate = self.rates(state, params)
        share = physics.compute_shares(action[:, 1], state.assoc, self.num_bs)
        infer = physics.inference_delay(action[:, 0], rate, share, params)
        system_delay = jnp.mean(infer + overhead)

        task = self.task_at(state.t, params)
        weights = self.area_weights(state.mobility.pos, params)
        xe, ye = self._sample_users(k_acc, task, weights, self.eval_samples)
        acc = jax.vmap(learning.accuracy)(state.models, xe, ye)
        info = {
            "delay": system_delay,
            "inference_delay": infer,
            "overhead": overhead,
            "accuracy": acc,
            "mean_accuracy": jnp.mean(acc),
            "predicted_acc": state.predicted_acc,
            "retrained": state.retrained & start,
            "frame_start": start,
            "assoc": state.assoc,
        }
        t = state.t + 1
        state = state.replace(
            mobility=self.walk.step(k_mob, state.mobility, params.mobility),
            fading=jax.random.exponential(k_fade, state.fading.shape, jnp.float32),
            t=t,
        )
        reward = -system_delay / params.delay_scale
        truncated = t >= params.episode_length
        return self.observe(state, params), state, reward, jnp.bool_(False), truncated, info


def _default_bs_xy(num_bs: int) -> np.ndarray:
    """``[M, 2]`` m: M BSs on a circle of radius 90 m around the centre of the 300 m square
    (a triangle for M = 3)."""
    angle = 2 * np.pi * np.arange(num_bs) / num_bs + np.pi / 2
    return (150.0 + 90.0 * np.stack([np.cos(angle), np.sin(angle)], -1)).astype(np.float32)

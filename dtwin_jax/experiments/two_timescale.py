"""Reproduction: two-timescale digital twin for edge inference and retraining (Cong, Cheng,
You, Huang, Wu, arXiv 2411.18329) on ``edge-retrain-v0``; parameters in ``PARAMS.md`` §4.

Stages (``config.stages``):

* ``validation``: PPO (the slot-level policy: offload fractions and compute weights, a
  tanh-squashed Gaussian) trained for each step size of ``lr_candidates`` on the validation
  seeds (``validation_seed + s``, never reported) and scored by the mean system delay on
  validation episodes; the best one trains the reported seeds. Without this stage ``lr``
  is used.
* ``train``: PPO on the proposed system (incremental retraining with twin data, frames of 10
  slots), ``num_seeds`` seeds in one vmapped run; learning curves.
* ``evaluate``: every seed is one system (its own users' paths, fading and data) run for
  ``eval_episodes`` episodes of 100 slots, the models and the twin's history carried over
  episodes. The same keys drive every arm, so comparisons are paired per seed.
  Large timescale arms (all with the seed's PPO policy for the slots, and again with the
  strongest classical slot policy, ``optimal``): ``proposed`` (two timescales, incremental
  learning with twin data), ``full_retraining`` (no incremental learning), ``no_twin``
  (real data only, accuracy predicted on the probes), ``single_timescale`` (association and
  retraining decided every slot: ``frame_length = 1``) and ``no_retraining`` (reference).
  Slot policies on the proposed system: PPO, ``equal_split`` (the paper's equal shares),
  ``balanced`` and ``optimal``.
* ``shift``: every area's data moves to the next area at slot ``shift_slot`` of the first
  episode (55: in the middle of a frame, so the two-timescale arms notice it only at the next
  frame); the true accuracy over the slots per arm.

Reported: mean system delay (ms) and mean true accuracy per arm, Student-t 95% intervals over
seeds, the paired per-seed differences and the relative delay reduction of the proposed scheme
(the paper reports > 60% against single timescale, with higher accuracy).

``python -m dtwin_jax.experiments.two_timescale --preset full`` writes
``benchmarks/results/two_timescale.json`` and ``two_timescale*.png``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import plots
from dtwin_jax._checks import check_choice, check_float, check_int
from dtwin_jax.envs.edge_retrain import EdgeRetrainEnv
from dtwin_jax.envs.edge_retrain import policies as slot_baselines
from dtwin_jax.learners import ppo
from dtwin_jax.reporting import provenance, t_interval, t_record, write_results

STAGES = ("validation", "train", "evaluate", "shift")
#: large-timescale arm -> (retraining mode, frame length)
ARMS = {
    "proposed": ("incremental", 10),
    "full_retraining": ("full", 10),
    "no_twin": ("real_only", 10),
    "single_timescale": ("incremental", 1),
    "no_retraining": ("none", 10),
}
SLOT_BASELINES = ("equal_split", "balanced", "optimal")


@dataclass(frozen=True)
class TwoTimescaleConfig:
    """Everything the experiment depends on (frozen; see ``PRESETS``).

    PPO: ``num_envs`` twins x ``num_steps`` slots per update, ``num_updates`` updates.
    Evaluation: ``eval_episodes`` episodes of ``episode_length`` slots per seed.
    ``arms`` (names of :data:`ARMS`, with ``proposed``) and ``slot_baselines`` (of
    :data:`SLOT_BASELINES`): the ones evaluated, all by default; each retraining mode and slot
    policy is one more compiled rollout, so a subset makes a quick run (the notebook's smoke
    size).
    """

    num_users: int = 10
    num_bs: int = 3
    episode_length: int = 100
    stages: tuple[str, ...] = ("validation", "train", "evaluate", "shift")
    num_seeds: int = 5
    seed: int = 0
    num_validation_seeds: int = 2
    validation_seed: int = 10_000
    lr_candidates: tuple[float, ...] = (3e-4, 1e-3)
    lr: float = 3e-4
    num_envs: int = 16
    num_steps: int = 100
    num_updates: int = 50
    hidden_sizes: tuple[int, ...] = (64, 64)
    eval_episodes: int = 5
    shift_slot: int = 55
    full_steps: int = 200
    arms: tuple[str, ...] = tuple(ARMS)
    slot_baselines: tuple[str, ...] = SLOT_BASELINES

    def __post_init__(self):
        for s in self.stages:
            check_choice("stages entry", s, STAGES)
        check_int("num_users", self.num_users, lo=1)
        check_int("num_bs", self.num_bs, lo=1)
        check_int("episode_length", self.episode_length, lo=2)
        check_int("num_seeds", self.num_seeds, lo=2)
        check_int("num_validation_seeds", self.num_validation_seeds, lo=1)
        for lr in (*self.lr_candidates, self.lr):
            check_float("lr", lr, 0.0, lo_open=True)
        check_int("num_envs", self.num_envs, lo=1)
        check_int("num_steps", self.num_steps, lo=1)
        check_int("num_updates", self.num_updates, lo=1)
        check_int("eval_episodes", self.eval_episodes, lo=1)
        check_int("shift_slot", self.shift_slot, lo=0, hi=self.episode_length - 1)
        check_int("full_steps", self.full_steps, lo=1)
        for a in self.arms:
            check_choice("arms entry", a, tuple(ARMS))
        if "proposed" not in self.arms:
            raise ValueError("arms must include 'proposed' (the reference of the comparisons)")
        for b in self.slot_baselines:
            check_choice("slot_baselines entry", b, SLOT_BASELINES)
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "slot_baselines", tuple(self.slot_baselines))


PRESETS = {
    "demo": TwoTimescaleConfig(num_users=4, episode_length=20, num_seeds=2,
                               num_validation_seeds=1, lr_candidates=(1e-3,), num_envs=4,
                               num_steps=20, num_updates=3, hidden_sizes=(16,),
                               eval_episodes=2, shift_slot=10, full_steps=30,
                               stages=("train", "evaluate", "shift")),
    "full": TwoTimescaleConfig(),
}


# ---------------------------------------------------------------------------- pieces
def make_env(config: TwoTimescaleConfig, arm: str = "proposed"):
    """The env and params of ``arm`` (:data:`ARMS`)."""
    retraining, frame = ARMS[arm]
    env = EdgeRetrainEnv(num_bs=config.num_bs, num_users=config.num_users,
                         retraining=retraining, full_steps=config.full_steps)
    params = env.make_params(frame_length=frame, episode_length=config.episode_length)
    return env, params


def ppo_config(config: TwoTimescaleConfig, lr: float) -> ppo.PPOConfig:
    """PPO for the slot policy. ``gamma = 0``: the slot actions (offload fractions and compute
    weights) change no state, only the slot's delay, so the problem is a contextual bandit and
    discounting future rewards would only add noise (set a priori, not tuned)."""
    return ppo.PPOConfig(
        num_envs=config.num_envs, num_steps=config.num_steps,
        total_timesteps=config.num_envs * config.num_steps * config.num_updates,
        num_minibatches=4 if (config.num_envs * config.num_steps) % 4 == 0 else 1,
        lr=lr, hidden_sizes=config.hidden_sizes, gamma=0.0, info_keys=("delay",),
    )


def train_ppo(config: TwoTimescaleConfig, lr: float, seeds: np.ndarray):
    """PPO on the proposed system, one run per seed (vmapped). Returns the network params
    (leading seed axis) and the per-update mean delay ``[S, num_updates]`` in ms."""
    env, params = make_env(config)
    train = ppo.make_train(env, params, ppo_config(config, lr))
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.int32))
    runner, metrics = jax.jit(jax.vmap(train))(keys)
    return runner.train_state.params, np.asarray(metrics["delay"]) * 1e3


def _slot_policy(env, params, config, name: str, lr: float):
    """``policy(key, obs, state, params, net) -> action`` of a slot policy for one twin
    (``net``: the PPO network params, ignored by the baselines)."""
    if name == "ppo":
        act = ppo.make_policy_fn(ppo_config(config, lr), env, params)
        return lambda key, obs, state, p, net: act(net, obs, key, True)
    base = slot_baselines.POLICIES[name](env)
    return lambda key, obs, state, p, net: base(key, obs, state, p)


_ROLLOUTS: dict = {}


def _rollout_fn(config, retraining: str, policy_name: str, lr: float):
    """Jitted ``(params, seeds [S], nets) -> (delay, accuracy, retrained)`` ``[S, steps]``
    for one retraining mode and slot policy; cached, so arms differing only in params
    (frame length, shift) share one compile."""
    cache_key = (config, retraining, policy_name, lr)
    if cache_key in _ROLLOUTS:
        return _ROLLOUTS[cache_key]
    env = EdgeRetrainEnv(num_bs=config.num_bs, num_users=config.num_users,
                         retraining=retraining, full_steps=config.full_steps)
    policy = _slot_policy(env, env.default_params, config, policy_name, lr)
    steps = config.episode_length * config.eval_episodes

    def run(params, seed, net):
        k_reset, k_run = jax.random.split(jax.random.key(seed))
        obs, state = env.reset(k_reset, params)

        def body(carry, k):
            obs, state = carry
            k_act, k_step = jax.random.split(k)
            action = policy(k_act, obs, state, params, net)
            obs, state, _, _, _, info = env.step(k_step, state, action, params)
            return (obs, state), (info["delay"], info["mean_accuracy"],
                                  info["retrained"].sum())

        return jax.lax.scan(body, (obs, state), jax.random.split(k_run, steps))[1]

    net_axis = 0 if policy_name == "ppo" else None
    fn = jax.jit(jax.vmap(run, (None, 0, net_axis)))
    _ROLLOUTS[cache_key] = fn
    return fn


def evaluate(config, arm: str, policy_name: str, seeds, net_params=None, lr: float = 3e-4,
             shift_slot: int = -1) -> dict:
    """Roll every seed's system for ``eval_episodes`` episodes of ``arm`` under the slot
    policy; returns per-slot ``delay`` (ms) and ``accuracy`` ``[S, eval_episodes * T]`` and
    the retrainings per slot ``[S, eval_episodes * T]``."""
    env, params = make_env(config, arm)
    params = params.replace(shift_slot=jnp.int32(shift_slot))
    fn = _rollout_fn(config, env.retraining, policy_name, lr)
    delay, acc, retrained = fn(params, jnp.asarray(seeds, jnp.int32), net_params)
    return {"delay": np.asarray(delay) * 1e3, "accuracy": np.asarray(acc),
            "retrained": np.asarray(retrained)}


def _summary(rollout: dict, episode_length: int) -> dict:
    delay = rollout["delay"].mean(1)
    acc = rollout["accuracy"].mean(1)
    num_eps = rollout["delay"].shape[1] // episode_length
    per_episode = rollout["accuracy"].reshape(len(acc), num_eps, episode_length).mean(-1)
    return {
        "delay_ms": t_record(delay, values=True),
        "accuracy": t_record(acc, values=True),
        "retrainings_per_episode": t_record(rollout["retrained"].sum(1) / num_eps),
        "accuracy_per_episode": _curve(per_episode),
        "delay_per_slot_ms": _curve(rollout["delay"][:, :episode_length]),
    }


def _curve(samples) -> dict:
    mean, half = t_interval(np.asarray(samples, np.float64), axis=0)
    return {"mean": np.asarray(mean).tolist(), "ci95": np.asarray(half).tolist()}


def paired(a, b) -> dict:
    """Per-seed paired comparison of ``a`` vs ``b`` (``[S]`` each): the mean difference
    ``a - b`` with its t interval, and the relative change of the means ``a / b - 1``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean, half = t_interval(a - b)
    return {"difference": {"mean": mean, "ci95": half},
            "excludes_zero": bool(abs(mean) > half),
            "relative_change_of_means": float(a.mean() / b.mean() - 1.0)}


# ---------------------------------------------------------------------------- run
def run(config: TwoTimescaleConfig, log=print) -> dict:
    """All stages of ``config``; returns the results dict (see the module docstring)."""
    out: dict = {"config": provenance(config)["config"], "arms": {}, "slot_policies": {}}
    t0 = time.time()
    lr = config.lr
    if "validation" in config.stages:
        val_seeds = config.validation_seed + np.arange(config.num_validation_seeds)
        scores = {}
        for cand in config.lr_candidates:
            nets, _ = train_ppo(config, cand, val_seeds)
            roll = evaluate(config, "proposed", "ppo", val_seeds + 500, nets, cand)
            scores[str(cand)] = float(roll["delay"].mean())
            log(f"validation lr={cand}: delay {scores[str(cand)]:.2f} ms "
                f"({time.time() - t0:.0f} s)")
        lr = float(min(scores, key=scores.get))
        out["validation"] = {"delay_ms_by_lr": scores, "chosen_lr": lr}
    out["lr"] = lr
    seeds = config.seed + np.arange(config.num_seeds)
    eval_seeds = seeds + 1000  # evaluation systems differ from the training twins' keys
    nets = None
    if "train" in config.stages:
        nets, curve = train_ppo(config, lr, seeds)
        out["training"] = {"delay_ms_per_update": _curve(curve)}
        log(f"trained PPO ({config.num_seeds} seeds, {time.time() - t0:.0f} s): delay "
            f"{curve[:, 0].mean():.2f} -> {curve[:, -1].mean():.2f} ms")
    if "evaluate" in config.stages:
        slot_names = (("ppo",) if nets is not None else ()) + config.slot_baselines
        per_seed = {}
        for name in slot_names:
            roll = evaluate(config, "proposed", name, eval_seeds, nets if name == "ppo" else None,
                            lr)
            out["slot_policies"][name] = _summary(roll, config.episode_length)
            per_seed[name] = roll["delay"].mean(1)
            log(f"slot policy {name}: {roll['delay'].mean():.2f} ms")
        pairs = [("ppo", b) for b in config.slot_baselines if "ppo" in per_seed]
        pairs += [("balanced", "equal_split"), ("optimal", "balanced")]
        out["slot_comparison"] = {f"{a}_vs_{b}": paired(per_seed[a], per_seed[b])
                                  for a, b in pairs if a in per_seed and b in per_seed}
        for policy in (("ppo",) if nets is not None else ()) + ("optimal",):
            arms = {}
            for arm in config.arms:
                roll = evaluate(config, arm, policy, eval_seeds,
                                nets if policy == "ppo" else None, lr)
                arms[arm] = (_summary(roll, config.episode_length), roll)
                log(f"{policy} / {arm}: delay {roll['delay'].mean():.2f} ms, accuracy "
                    f"{roll['accuracy'].mean():.3f} ({time.time() - t0:.0f} s)")
            out["arms"][policy] = {a: s for a, (s, _) in arms.items()}
            prop = arms["proposed"][1]
            out.setdefault("paired", {})[policy] = {
                f"proposed_vs_{a}": {
                    "delay_ms": paired(prop["delay"].mean(1), r["delay"].mean(1)),
                    "accuracy": paired(prop["accuracy"].mean(1), r["accuracy"].mean(1)),
                }
                for a, (_, r) in arms.items() if a != "proposed"
            }
    if "shift" in config.stages:
        policy = "ppo" if nets is not None else "optimal"
        out["shift"] = {"policy": policy, "shift_slot": config.shift_slot, "accuracy": {}}
        for arm in config.arms:
            roll = evaluate(config, arm, policy, eval_seeds, nets if policy == "ppo" else None,
                            lr, shift_slot=config.shift_slot)
            first = roll["accuracy"][:, :config.episode_length]  # the episode of the shift
            out["shift"]["accuracy"][arm] = _curve(first)
    out["wall_s"] = time.time() - t0
    return out


def headline(results: dict) -> dict:
    """The paper's comparisons from ``results``: delay reduction of the proposed scheme vs
    each arm (relative change of the mean delays, negative = lower) and the accuracies."""
    out = {}
    for policy, comps in results.get("paired", {}).items():
        out[policy] = {k: {"delay_change": v["delay_ms"]["relative_change_of_means"],
                           "delay_difference_excludes_zero": v["delay_ms"]["excludes_zero"],
                           "accuracy_difference": v["accuracy"]["difference"]["mean"]}
                       for k, v in comps.items()}
    return out


def figures(results: dict, out_prefix: str) -> list[str]:
    """``<prefix>.png`` (delay and accuracy per arm, slot policies, accuracy over episodes)
    and ``<prefix>_shift.png`` (accuracy under the sudden shift)."""
    import matplotlib.pyplot as plt

    paths = []
    if results.get("arms"):
        policy = "ppo" if "ppo" in results["arms"] else "optimal"
        arms = results["arms"][policy]
        names = list(arms)
        fig, axes = plt.subplots(2, 2, figsize=(10, 7))
        plots.bar_chart(names, [arms[a]["delay_ms"]["mean"] for a in names],
                        [arms[a]["delay_ms"]["ci95"] for a in names], ax=axes[0, 0],
                        ylabel=f"mean system delay (ms), slots by {policy}")
        plots.bar_chart(names, [arms[a]["accuracy"]["mean"] for a in names],
                        [arms[a]["accuracy"]["ci95"] for a in names], ax=axes[0, 1],
                        ylabel="mean true accuracy")
        plots.training_curves({a: arms[a]["accuracy_per_episode"] for a in names},
                              ax=axes[1, 0], xlabel="episode", ylabel="accuracy")
        slots = results["slot_policies"]
        plots.bar_chart(list(slots), [s["delay_ms"]["mean"] for s in slots.values()],
                        [s["delay_ms"]["ci95"] for s in slots.values()], ax=axes[1, 1],
                        ylabel="delay (ms), proposed system")
        fig.tight_layout()
        path = f"{out_prefix}.png"
        plots.save(fig, path)
        paths.append(path)
    if results.get("shift"):
        fig, ax = plt.subplots(figsize=(6, 4))
        plots.training_curves(results["shift"]["accuracy"], ax=ax, xlabel="slot",
                              ylabel="true accuracy")
        ax.axvline(results["shift"]["shift_slot"], color="k", ls=":")
        path = f"{out_prefix}_shift.png"
        plots.save(fig, path)
        paths.append(path)
    return paths


def main(argv=None) -> dict:
    """CLI: run the ``--preset`` (default ``demo``; ``--seeds`` overrides ``num_seeds``), write
    the JSON (``--out``) and figures; returns the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--seeds", type=int, default=None, help="override num_seeds")
    ap.add_argument("--out", default=None, help="results JSON (default: "
                    "benchmarks/results/two_timescale[_<preset>].json)")
    args = ap.parse_args(argv)
    config = PRESETS[args.preset]
    if args.seeds is not None:
        config = replace(config, num_seeds=args.seeds)
    suffix = "" if args.preset == "full" else f"_{args.preset}"
    out = args.out or os.path.join("benchmarks", "results", f"two_timescale{suffix}.json")
    results = run(config)
    results["headline"] = headline(results)
    results["figures"] = figures(results, os.path.splitext(out)[0])
    write_results(results, out, config)
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()

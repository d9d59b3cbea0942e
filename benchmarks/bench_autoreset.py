"""Cost of episode starts: the gymnax pattern vs ``VecEnv``, a 300 m vs the default 2 km map.

    python benchmarks/bench_autoreset.py [--quick] [--out benchmarks/results]

Two ways to run a batch of twins with auto-resets, side by side in one run:

* ``vecenv``: ``lax.scan`` over :class:`~dtwin_jax.envs.wrappers.VecEnv.step`, which computes
  the (batched) reset only on steps where some twin's episode ended;
* ``gymnax``: ``lax.scan`` over ``jax.vmap(env.step)``, the pattern users write: every twin
  computes its ``reset_from`` on every step and a ``select`` keeps it where the episode ended.

Both run uniformly random legal actions. Configurations (issue 8): the pattern comparison at
mobile-env's size (1024 twins, 13 BSs, 30 users, 100-step episodes) on a 300 m and a 2 km map;
the scale comparison at the default deployment (22 BSs: 4 macro + 18 small, 60 users, 50-step
episodes, 128 twins) on a 300 m and a 2 km map. Also reported: the time of one batched
``reset`` (the first episode's, which draws each twin's shadowing tile) against one step, and
the bytes of one twin's state at the default scale. Timings exclude compilation; best of
``--repeats``. Ratios matter on a shared CPU; absolute numbers only on a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import dtwin_jax
from dtwin_jax.envs.testing import random_action
from dtwin_jax.envs.wrappers import VecEnv
from dtwin_jax.parallel import twin_params
from dtwin_jax.reporting import machine_info, write_results

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def build(num_bs: int, num_macro: int, users: int, area_m: float, episode: int, twins: int):
    """``(env, batched params)`` for ``twins`` identical twins."""
    env = dtwin_jax.make("association-v0", num_bs=num_bs, num_macro=num_macro,
                         max_users=users, area_m=area_m)
    batch = twin_params(env, [users] * twins, episode_length=episode)
    return env, batch


def rollout_fn(env, pattern: str, twins: int, steps: int):
    """A jittable ``run(key, batch) -> scalar`` of ``steps`` steps in the given pattern."""
    vec = VecEnv(env, twins)
    vmapped_step = jax.vmap(env.step)

    def act(key, obs, batch):
        keys = jax.random.split(key, twins)
        return jax.vmap(lambda k, o, p: random_action(env, k, o, p))(keys, obs, batch)

    def run(key, batch):
        k0, k1 = jax.random.split(key)
        obs, state = vec.reset(k0, batch)

        def body(carry, k):
            obs, state, acc = carry
            ka, ks = jax.random.split(k)
            action = act(ka, obs, batch)
            if pattern == "vecenv":
                obs, state, reward, _, _, _ = vec.step(ks, state, action, batch)
            else:
                keys = jax.random.split(ks, twins)
                obs, state, reward, _, _, _ = vmapped_step(keys, state, action, batch)
            return (obs, state, acc + reward.sum()), None

        (_, _, acc), _ = jax.lax.scan(body, (obs, state, jnp.float32(0.0)),
                                      jax.random.split(k1, steps))
        return acc

    return run


def best_time(fn, args, repeats: int) -> tuple[float, float]:
    """``(compile_s, best_run_s)`` of ``jax.jit(fn)(*args)``."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    return compile_s, best


def measure(cfg: dict, pattern: str, steps: int, repeats: int) -> dict:
    env, batch = build(cfg["num_bs"], cfg["num_macro"], cfg["users"], cfg["area_m"],
                       cfg["episode"], cfg["twins"])
    run = rollout_fn(env, pattern, cfg["twins"], steps)
    compile_s, run_s = best_time(run, (jax.random.PRNGKey(1), batch), repeats)
    # one batched first reset (draws the tiles) and its share of the rollout
    keys = jax.random.split(jax.random.PRNGKey(2), cfg["twins"])
    _, reset_s = best_time(jax.vmap(env.reset_env), (keys, batch), repeats)
    user_steps = cfg["twins"] * cfg["users"] * steps
    return {
        **cfg,
        "pattern": pattern,
        "steps": steps,
        "compile_s": compile_s,
        "run_s": run_s,
        "first_reset_s": reset_s,
        "user_steps_per_s": user_steps / run_s,
        "env_steps_per_s": cfg["twins"] * steps / run_s,
    }


def state_bytes(num_bs: int, num_macro: int, users: int, area_m: float) -> int:
    """Bytes of one twin's state (abstract evaluation, nothing allocated)."""
    env = dtwin_jax.make("association-v0", num_bs=num_bs, num_macro=num_macro,
                         max_users=users, area_m=area_m)
    _, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), env.default_params)
    return int(sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(state)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, default deployment only (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=RESULTS, help="results folder")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats={args.repeats} must be >= 1")
    scale = 16 if args.quick else 1
    pattern_cfgs = [dict(name=f"mobile-env size, {int(a)} m", num_bs=13, num_macro=0, users=30,
                         area_m=a, episode=100, twins=1024 // scale) for a in (300.0, 2000.0)]
    if args.quick:  # a smoke run: compiles dominate, so the default-deployment pair only
        pattern_cfgs = []
    scale_cfgs = [dict(name=f"default deployment, {int(a)} m", num_bs=22, num_macro=4, users=60,
                       area_m=a, episode=50, twins=128 // scale) for a in (300.0, 2000.0)]
    steps = 50 if args.quick else 200
    rows = []
    for cfg in pattern_cfgs + scale_cfgs:
        for pattern in ("vecenv", "gymnax"):
            row = measure(cfg, pattern, steps, args.repeats)
            rows.append(row)
            print(f"{row['name']:<28} {pattern:<7} {row['user_steps_per_s']:>12.3e} "
                  f"user-steps/s  first reset {row['first_reset_s'] * 1e3:8.1f} ms  "
                  f"compile {row['compile_s']:5.1f} s", flush=True)

    def ups(name, pattern):
        return next(r["user_steps_per_s"] for r in rows
                    if r["name"] == name and r["pattern"] == pattern)

    summary = {
        "gymnax_over_vecenv": {c["name"]: ups(c["name"], "gymnax") / ups(c["name"], "vecenv")
                               for c in pattern_cfgs + scale_cfgs},
        "2km_over_300m_per_user_step": {
            p: ups(scale_cfgs[1]["name"], p) / ups(scale_cfgs[0]["name"], p)
            for p in ("vecenv", "gymnax")},
        "state_bytes_per_twin_default": state_bytes(22, 4, 256, 2000.0),
    }
    print("\n| ratio | value |\n|---|---|")
    for k, v in summary["gymnax_over_vecenv"].items():
        print(f"| gymnax / VecEnv, {k} | {v:.2f} |")
    for k, v in summary["2km_over_300m_per_user_step"].items():
        print(f"| 2 km / 300 m per user-step, {k} | {v:.2f} |")
    print(f"| state per twin, default (22 BSs, 256 users, 2 km) | "
          f"{summary['state_bytes_per_twin_default'] / 1e3:.0f} kB |")
    result = {"benchmark": "autoreset", "machine": machine_info(), "quick": args.quick,
              "rows": rows, "summary": summary}
    name = "bench_autoreset_quick.json" if args.quick else "bench_autoreset.json"
    write_results(result, os.path.join(args.out, name), config=vars(args))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

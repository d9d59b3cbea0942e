"""Measured device memory per twin of every registered env, and how many twins fit.

For each env (its default sizes; ``association-v0`` also at the paper's size, 22 BSs and 128
users) this compiles, at two twin counts, one ``VecEnv`` step (state donated) and one PPO
update (a 16-step rollout and 4 epochs of 4 minibatches, 64x64 network), and reads XLA's
buffer assignment of each executable (:mod:`dtwin_jax.chunking`: arguments + outputs +
temporaries - aliases), at three twin counts: the line through the two largest gives bytes
per twin and fixed bytes (what decides how many twins fit), and its relative error at the
smallest is reported as ``linearity_error``.
On a GPU the step is also run at the larger count and the device's ``peak_bytes_in_use``
recorded. Reported: the state's bytes per twin (the arrays of one reset), both footprints, and
the largest number of twins that steps or trains in ``--budget-gib`` (default: this host's
memory, or the device's where it reports one) and in an H200's 139 GiB (from the measured
lines; no such device here).

Usage: ``python benchmarks/bench_memory.py [--quick] [--envs ...]``; writes
``benchmarks/results/bench_memory.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import dtwin_jax
from dtwin_jax import chunking
from dtwin_jax.envs.registry import registered_envs
from dtwin_jax.learners.ppo import PPOConfig
from dtwin_jax.reporting import machine_info, write_results

H200_BYTES = 139 * 2**30
#: env id -> constructor arguments (beyond the defaults) of the configurations measured
CONFIGS: dict[str, list[dict]] = {
    "association-v0": [{}, {"num_bs": 22, "max_users": 128}],
}


def _host_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _device_budget() -> int:
    stats = jax.devices()[0].memory_stats()
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else _host_bytes()


def _device_peak_of_step(env, twins: int) -> int | None:
    """``peak_bytes_in_use`` after stepping ``twins`` twins once (None where the backend
    reports no memory statistics, as on CPU)."""
    device = jax.devices()[0]
    if device.memory_stats() is None:
        return None
    from dtwin_jax.envs.wrappers import VecEnv
    from dtwin_jax.learners.common import dummy_action

    vec = VecEnv(env, twins)
    params = vec.batch_params()
    _, state = jax.jit(vec.reset)(jax.random.PRNGKey(0), params)
    step = jax.jit(vec.step, donate_argnums=1)
    out = step(jax.random.PRNGKey(1), state, dummy_action(env, env.default_params, twins),
               params)
    jax.block_until_ready(out)
    return int(device.memory_stats()["peak_bytes_in_use"])


def measure(env_id: str, kwargs: dict, sizes: tuple[int, ...], ppo: PPOConfig,
            budget: int) -> dict:
    """One env configuration's row (see the module docstring)."""
    env = dtwin_jax.make(env_id, **kwargs)
    _, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), env.default_params)
    state_bytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(state))
    row = {"env": env_id, "kwargs": kwargs, "state_bytes_per_twin": state_bytes}
    for name, fn in (("step", lambda: chunking.step_footprint(env, sizes=sizes)),
                     ("ppo_update", lambda: chunking.ppo_update_footprint(env, ppo, sizes=sizes))):
        start = time.perf_counter()
        fp = fn()
        row[name] = {**fp.to_dict(), "max_twins_budget": fp.max_twins(budget),
                     "max_twins_h200": fp.max_twins(H200_BYTES),
                     "compile_s": time.perf_counter() - start}
    row["device_peak_step_bytes"] = _device_peak_of_step(env, sizes[-1])
    return row


def main(argv=None) -> dict:
    """Command line: see the module docstring. Returns the results written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=None, choices=registered_envs())
    ap.add_argument("--quick", action="store_true", help="small twin counts (a smoke run)")
    ap.add_argument("--budget-gib", type=float, default=None,
                    help="memory budget for max_twins_budget (default: host or device memory)")
    ap.add_argument("--out", default="benchmarks/results/bench_memory.json")
    args = ap.parse_args(argv)
    sizes = (2, 4, 8) if args.quick else (16, 64, 256)
    budget = int(args.budget_gib * 2**30) if args.budget_gib else _device_budget()
    ppo = PPOConfig(num_steps=16, num_minibatches=4, update_epochs=4, hidden_sizes=(64, 64))
    rows = []
    for env_id in args.envs or registered_envs():
        for kwargs in CONFIGS.get(env_id, [{}]):
            rows.append(measure(env_id, kwargs, sizes, ppo, budget))
            r = rows[-1]
            print(f"{env_id:<16} {str(kwargs):<32} state {r['state_bytes_per_twin'] / 1e3:8.1f} kB"
                  f"  step {r['step']['per_twin_bytes'] / 1e3:8.1f} kB/twin"
                  f"  ppo {r['ppo_update']['per_twin_bytes'] / 1e6:7.2f} MB/twin"
                  f"  line error {r['step']['linearity_error']:.1%} / "
                  f"{r['ppo_update']['linearity_error']:.1%}"
                  f"  max twins (H200) step {r['step']['max_twins_h200']:,}"
                  f" ppo {r['ppo_update']['max_twins_h200']:,}", flush=True)
    results = {"benchmark": "memory", "sizes": list(sizes),
               "budget_bytes": budget, "h200_bytes": H200_BYTES,
               "ppo": {"num_steps": ppo.num_steps, "num_minibatches": ppo.num_minibatches,
                       "update_epochs": ppo.update_epochs, "hidden_sizes": ppo.hidden_sizes},
               "machine": machine_info(), "rows": rows}
    write_results(results, args.out, config=vars(args))
    print("wrote", args.out)
    return results


if __name__ == "__main__":
    main()

"""``dnt-sync-v0`` env steps per second vs number of twins, against the NumPy + SciPy reference.

Both sides run the paper's default twin (3 BSs, 12 users, 12 RBs, K = 5, GRU predictor) under
the policy "every BS updates and serves every covered user" (every BS solves a full matching):

* ours  - ``jax.jit`` of a ``lax.scan`` over ``--steps`` steps of ``jax.vmap(env.step)`` over
  the twins (auto-reset included);
* numpy - ``benchmarks/peers/dnt_numpy.py``: the same step in NumPy/SciPy, one twin at a time
  in a Python loop (no auto-reset).

Where the time goes (ours, at every twin count): the full step, the step with the
"persistence" predictor instead of the GRU, and the step with the Hungarian allocation
replaced by an empty one (no matching; everything else as is). The reference is timed with
both predictors as well. Times are the best of ``--repeats`` runs (shared CPU: background load
hits all alike; the 1-minute load average is recorded).

Usage: ``python benchmarks/bench_dnt.py [--quick]``; writes
``benchmarks/results/bench_dnt.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import dnt_numpy  # noqa: E402

from dtwin_jax.allocation.rb import RBAllocation
from dtwin_jax.checkpoint import load_checkpoint
from dtwin_jax.envs.dnt_sync import DntSyncEnv, physics, policies
from dtwin_jax.reporting import machine_info, write_results
from dtwin_jax.twins import predictor as gru

TWINS = (1, 16, 256, 1024)
QUICK_TWINS = (1, 16, 64)


def _no_matching(gain, serve, tx_power_w, noise_w, bandwidth, reserve_update, uplink_gain):
    """Stand-in for the allocation: nobody gets an RB; the update RB and rate as usual."""
    num_u, num_m, num_r = gain.shape
    best = jnp.argmax(uplink_gain, axis=1)
    reserved = reserve_update[:, None] & (jnp.arange(num_r)[None, :] == best[:, None])
    snr = tx_power_w * jnp.max(uplink_gain, axis=1) / noise_w
    rate = jnp.where(reserve_update, bandwidth * jnp.log2(1.0 + snr), 0.0)
    zeros = jnp.zeros((num_u, num_m, num_r), jnp.float32)
    return RBAllocation(zeros, zeros, jnp.zeros(num_u, jnp.float32), reserved, rate)


def _runner(env: DntSyncEnv, num_twins: int, num_steps: int):
    """Compiled ``run(keys) -> team reward sum`` over ``num_steps`` steps of the twins."""
    params = env.default_params
    policy = policies.update_and_serve_all_policy(env)

    def one_step(carry, key):
        obs, state = carry
        action = policy(key, obs, state, params)
        obs, state, reward, _, _, info = env.step(key, state, action, params)
        return (obs, state), info["team_reward"]

    def run(key):
        keys = jax.random.split(key, num_twins)
        carry = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(c, k):
            return jax.vmap(one_step)(c, jax.random.split(k, num_twins))

        _, team = jax.lax.scan(body, carry, jax.random.split(key, num_steps))
        return team.sum()

    return jax.jit(run)


def _best_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_ours(env: DntSyncEnv, num_twins: int, num_steps: int, repeats: int,
              allocation: bool = True) -> dict:
    """Best seconds per batched step (compile excluded) and env steps/s."""
    if allocation:
        run = _runner(env, num_twins, num_steps)
        jax.block_until_ready(run(jax.random.PRNGKey(0)))  # compile
    else:
        with mock.patch.object(physics, "iterative_rb_allocation", _no_matching):
            run = _runner(env, num_twins, num_steps)
            jax.block_until_ready(run(jax.random.PRNGKey(0)))
    seconds = _best_time(lambda: jax.block_until_ready(run(jax.random.PRNGKey(1))), repeats)
    # the timed call includes one reset of every twin (about the cost of a step, ~1/steps)
    return {"s_per_step": seconds / num_steps,
            "steps_per_s": num_twins * num_steps / seconds}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"twins {QUICK_TWINS}, fewer steps")
    ap.add_argument("--twins", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None, help="steps per timed call (ours)")
    ap.add_argument("--ref-steps", type=int, default=None, help="steps of the reference")
    ap.add_argument("--repeats", type=int, default=3)
    default_out = Path(__file__).parent / "results" / "bench_dnt.json"
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    twins = args.twins or (QUICK_TWINS if args.quick else TWINS)
    steps = args.steps or (10 if args.quick else 20)
    ref_steps = args.ref_steps or (100 if args.quick else 300)

    envs = {"gru": DntSyncEnv(), "persistence": DntSyncEnv(predictor="persistence")}
    params = envs["gru"].default_params
    weights, meta = load_checkpoint(gru.SHIPPED_CHECKPOINT)
    np_gru = dnt_numpy.ref.gru_predictor(weights, gru.PredictorConfig.from_dict(meta["config"]))

    def np_pers(history):
        return history[-1]

    load_before = machine_info()["load_avg_1m"]

    reference = {}
    for name, pred in (("gru", np_gru), ("persistence", np_pers)):
        runs = [dnt_numpy.measure(params, 12, 5, pred, ref_steps, seed=i)
                for i in range(args.repeats)]
        reference[name] = max(r["steps_per_s"] for r in runs)
    print(f"numpy+scipy reference: {reference['gru']:.0f} steps/s (GRU), "
          f"{reference['persistence']:.0f} steps/s (persistence)")

    rows = []
    print(f"{'twins':>6} {'steps/s':>10} {'x numpy':>8} {'persist.':>10} {'no alloc':>10} "
          f"{'ms/step':>8} {'alloc %':>7} {'GRU %':>6}")
    for n in twins:
        full = time_ours(envs["gru"], n, steps, args.repeats)
        pers = time_ours(envs["persistence"], n, steps, args.repeats)
        no_alloc = time_ours(envs["gru"], n, steps, args.repeats, allocation=False)
        t = full["s_per_step"]
        row = {
            "twins": n,
            "steps_per_s": full["steps_per_s"],
            "s_per_batched_step": t,
            "speedup_vs_numpy": full["steps_per_s"] / reference["gru"],
            "persistence_steps_per_s": pers["steps_per_s"],
            "no_allocation_steps_per_s": no_alloc["steps_per_s"],
            "allocation_share": max(0.0, 1.0 - no_alloc["s_per_step"] / t),
            "gru_share": max(0.0, 1.0 - pers["s_per_step"] / t),
        }
        rows.append(row)
        print(f"{n:>6} {row['steps_per_s']:>10.0f} {row['speedup_vs_numpy']:>8.1f} "
              f"{row['persistence_steps_per_s']:>10.0f} "
              f"{row['no_allocation_steps_per_s']:>10.0f} {t * 1e3:>8.2f} "
              f"{100 * row['allocation_share']:>7.0f} {100 * row['gru_share']:>6.0f}",
              flush=True)

    result = {
        "benchmark": "bench_dnt",
        "env": "dnt-sync-v0 (M=3, U=12, N=12, K=5, flat actions)",
        "policy": "update + serve all covered users",
        "steps_per_call": steps,
        "reference_steps": ref_steps,
        "reference_steps_per_s": reference,
        "rows": rows,
        "load_avg_1m_before": load_before,
        "machine": machine_info(scipy=__import__("scipy").__version__),
    }
    write_results(result, args.out, config=vars(args))
    return result


if __name__ == "__main__":
    main()

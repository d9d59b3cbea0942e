"""``dnt-sync-v0`` env steps per second vs number of twins, against the NumPy + SciPy reference in
two forms (one twin at a time, and batched over twins), in one run.

Both sides run the paper's default twin (3 BSs, 12 users, 12 RBs, K = 5, GRU predictor) under
the policy "every BS updates and serves every covered user" (every BS solves a full matching):

* ours  - ``jax.jit`` of a ``lax.scan`` over ``--steps`` steps of ``jax.vmap(env.step)`` over
  the twins (auto-reset included);
* numpy - ``benchmarks/peers/dnt_numpy.py``: the same step in NumPy/SciPy (float64), one twin
  at a time in a Python loop (no auto-reset);
* numpy batched - ``benchmarks/peers/dnt_numpy_batched.py``: the same NumPy/SciPy step batched
  over all the twins (float64; every array op on ``[B, ...]`` arrays, the per-BS matchings a
  loop over twins x BSs, the GRU one matmul per layer for all twins' users), timed at every
  twin count on ``--batched-twin-steps`` twin-steps. Before timing, it is stepped next to the
  one-twin reference on the same draws for 3 twins and must agree.

Where the time goes (ours, at every twin count): the full step; the step with the
"persistence" predictor instead of the GRU; the step with the Hungarian allocation replaced by
an empty one (no matching, everything else as is); and the two components alone on the same
number of twins (one batched ``iterative_rb_allocation``, one batched GRU prediction). All
variants are compiled first and then timed interleaved, best of ``--repeats`` (shared CPU:
background load hits all alike). The reference is timed with both predictors before and
after our rows, and ratios use the mean of the two; the batched peer is timed with both
predictors at each twin count, best of ``--repeats``. The 1-minute load average is recorded.

Usage: ``python benchmarks/bench_dnt.py [--quick]``; writes
``benchmarks/results/bench_dnt.json`` (``--out``). Each side gets one thread
(``one_thread.py``, unless the environment says otherwise, as in the recorded run):
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false OPENBLAS_NUM_THREADS=1`` (on a shared machine
OpenBLAS's threads otherwise spin against the load and slow the NumPy peers several times).
"""

from __future__ import annotations

import one_thread  # noqa: F401  (sets the thread counts before NumPy and JAX load)

# isort: split
import argparse  # noqa: E402
import os
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import dnt_numpy, dnt_numpy_batched  # noqa: E402

from dtwin_jax.allocation.rb import RBAllocation, iterative_rb_allocation
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


def _timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def step_variants(num_twins: int, num_steps: int) -> dict:
    """Compiled zero-argument callables of the step variants and of the two components.

    ``full``: the env step (GRU); ``persistence``: with the "last known position" predictor;
    ``no_allocation``: with the matching replaced by an empty allocation (all per call of
    ``num_steps`` steps); ``allocation`` / ``gru``: the allocation or the GRU alone on
    ``num_twins`` random inputs (per call of one batched step).
    """
    env = DntSyncEnv()
    fns = {
        "full": _runner(env, num_twins, num_steps),
        "persistence": _runner(DntSyncEnv(predictor="persistence"), num_twins, num_steps),
    }
    with mock.patch.object(physics, "iterative_rb_allocation", _no_matching):
        run = _runner(env, num_twins, num_steps)
        jax.block_until_ready(run(jax.random.PRNGKey(0)))  # traced with the stand-in
    fns["no_allocation"] = run
    calls = {name: (lambda f=f: f(jax.random.PRNGKey(1))) for name, f in fns.items()}

    u, m, n, k = env.num_users, env.num_bs, env.num_rbs, env.history_len
    rng = np.random.default_rng(0)
    gain = jnp.asarray(rng.exponential(size=(num_twins, u, m, n)) * 1e-3, jnp.float32)
    serve = jnp.asarray(rng.random((num_twins, m, u)) < 0.6)
    up = jnp.asarray(rng.exponential(size=(num_twins, m, n)) * 1e-4, jnp.float32)
    reserve = jnp.ones((num_twins, m), bool)
    alloc = jax.jit(jax.vmap(
        lambda g, s, r, q: iterative_rb_allocation(g, s, 1.0, 1e-5, 1.0, r, q).rate))
    hist = jnp.asarray(rng.uniform(-50, 50, (num_twins, k, u, 2)), jnp.float32)
    pred = jax.jit(jax.vmap(env.predictor))
    calls["allocation"] = lambda: alloc(gain, serve, reserve, up)
    calls["gru"] = lambda: pred(hist)
    for fn in calls.values():
        _timed(fn)  # compile
    return calls


def time_variants(num_twins: int, num_steps: int, repeats: int) -> dict:
    """Best seconds per batched step of every variant, timed interleaved."""
    calls = step_variants(num_twins, num_steps)
    best = dict.fromkeys(calls, np.inf)
    for _ in range(repeats):
        for name, fn in calls.items():
            best[name] = min(best[name], _timed(fn))
    per_call_steps = {"allocation": 1, "gru": 1}
    return {name: t / per_call_steps.get(name, num_steps) for name, t in best.items()}


def reference_rates(params, predictors: dict, num_steps: int, repeats: int) -> dict:
    """Best steps/s of the NumPy reference per predictor."""
    return {name: max(dnt_numpy.measure(params, 12, 5, pred, num_steps, seed=i)["steps_per_s"]
                      for i in range(repeats))
            for name, pred in predictors.items()}


def batched_rates(params, predictors: dict, num_twins: int, num_steps: int,
                  repeats: int) -> dict:
    """Best twin-steps/s of the batched NumPy peer on ``num_twins`` twins per predictor."""
    return {name: max(dnt_numpy_batched.measure(params, 12, 5, pred, num_twins, num_steps,
                                                seed=i)["steps_per_s"]
                      for i in range(repeats))
            for name, pred in predictors.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"twins {QUICK_TWINS}, fewer steps")
    ap.add_argument("--twins", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None, help="steps per timed call (ours)")
    ap.add_argument("--ref-steps", type=int, default=None, help="steps of the reference")
    ap.add_argument("--batched-twin-steps", type=int, default=4096,
                    help="twin-steps per timed call of the batched peer (at least 2 steps, at "
                         "most --ref-steps)")
    ap.add_argument("--repeats", type=int, default=3)
    default_out = Path(__file__).parent / "results" / "bench_dnt.json"
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    twins = args.twins or (QUICK_TWINS if args.quick else TWINS)
    steps = args.steps or (10 if args.quick else 20)
    ref_steps = args.ref_steps or (100 if args.quick else 300)

    params = DntSyncEnv(predictor="persistence").default_params
    weights, meta = load_checkpoint(gru.SHIPPED_CHECKPOINT)

    def np_persistence(history):
        return history[-1]

    np_preds = {
        "gru": dnt_numpy.ref.gru_predictor(weights, gru.PredictorConfig.from_dict(meta["config"])),
        "persistence": np_persistence,
    }
    dnt_numpy_batched.check_against_reference(params, 12, 5, np_preds["gru"])
    print("batched NumPy peer agrees with the one-twin reference (3 twins, 3 steps)", flush=True)
    load_before = machine_info()["load_avg_1m"]
    before = reference_rates(params, np_preds, ref_steps, args.repeats)
    print(f"numpy+scipy reference (before): {before['gru']:.0f} steps/s (GRU), "
          f"{before['persistence']:.0f} steps/s (persistence)", flush=True)

    rows = []
    for n in twins:
        t = time_variants(n, steps, args.repeats)
        b_steps = max(2, min(ref_steps, args.batched_twin_steps // n))
        batched = batched_rates(params, np_preds, n, b_steps, args.repeats)
        rows.append({
            "twins": n,
            "s_per_batched_step": t["full"],
            "steps_per_s": n / t["full"],
            "persistence_steps_per_s": n / t["persistence"],
            "no_allocation_steps_per_s": n / t["no_allocation"],
            "allocation_alone_s": t["allocation"],
            "gru_alone_s": t["gru"],
            "numpy_batched_steps": b_steps,
            "numpy_batched_steps_per_s": batched["gru"],
            "numpy_batched_persistence_steps_per_s": batched["persistence"],
        })
        print(f"twins {n}: {n / t['full']:.0f} steps/s, batched numpy {batched['gru']:.0f} "
              f"steps/s", flush=True)

    after = reference_rates(params, np_preds, ref_steps, args.repeats)
    reference = {k: (before[k] + after[k]) / 2 for k in before}
    print(f"numpy+scipy reference (after): {after['gru']:.0f} steps/s (GRU), "
          f"{after['persistence']:.0f} steps/s (persistence); ratios use the mean")
    print(f"{'twins':>6} {'steps/s':>9} {'x numpy':>8} {'batched':>8} {'x batch':>8} "
          f"{'persist.':>9} {'x numpy':>8} {'x batch':>8} "
          f"{'no alloc':>9} {'ms/step':>8} {'alloc ms':>9} {'GRU ms':>8}")
    for row in rows:
        row["speedup_vs_numpy"] = row["steps_per_s"] / reference["gru"]
        row["persistence_speedup_vs_numpy"] = (row["persistence_steps_per_s"]
                                               / reference["persistence"])
        row["speedup_vs_numpy_batched"] = row["steps_per_s"] / row["numpy_batched_steps_per_s"]
        row["persistence_speedup_vs_numpy_batched"] = (
            row["persistence_steps_per_s"] / row["numpy_batched_persistence_steps_per_s"])
        print(f"{row['twins']:>6} {row['steps_per_s']:>9.0f} {row['speedup_vs_numpy']:>8.1f} "
              f"{row['numpy_batched_steps_per_s']:>8.0f} "
              f"{row['speedup_vs_numpy_batched']:>8.1f} "
              f"{row['persistence_steps_per_s']:>9.0f} "
              f"{row['persistence_speedup_vs_numpy']:>8.1f} "
              f"{row['persistence_speedup_vs_numpy_batched']:>8.1f} "
              f"{row['no_allocation_steps_per_s']:>9.0f} "
              f"{row['s_per_batched_step'] * 1e3:>8.2f} {row['allocation_alone_s'] * 1e3:>9.2f} "
              f"{row['gru_alone_s'] * 1e3:>8.2f}")

    result = {
        "benchmark": "bench_dnt",
        "env": "dnt-sync-v0 (M=3, U=12, N=12, K=5, flat actions)",
        "policy": "update + serve all covered users",
        "steps_per_call": steps,
        "reference_steps": ref_steps,
        "reference_steps_per_s": reference,
        "reference_before_after": {"before": before, "after": after},
        "peers": {
            "numpy": {"form": "one twin at a time (Python loop over twins)", "dtype": "float64",
                      "implementation": "benchmarks/peers/dnt_numpy.py"},
            "numpy_batched": {"form": "batched over twins (loop over twins x BSs for "
                                      "linear_sum_assignment only)", "dtype": "float64",
                              "implementation": "benchmarks/peers/dnt_numpy_batched.py"},
        },
        "rows": rows,
        "load_avg_1m_before": load_before,
        "machine": machine_info(scipy=__import__("scipy").__version__,
                                openblas_num_threads=os.environ.get("OPENBLAS_NUM_THREADS")),
    }
    write_results(result, args.out, config=vars(args))
    return result


if __name__ == "__main__":
    main()

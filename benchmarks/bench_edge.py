"""``edge-retrain-v0`` env steps per second vs number of twins, against the NumPy + SciPy
reference in two forms (one twin at a time, and batched over twins), in one run.

Both sides run the env's default twin (3 BSs, 10 users, ``retraining="incremental"``,
association by LP relaxation + rounding) under the ``balanced`` policy (equal compute shares,
the offload fraction that equalises local and offloaded time), from slot 0 over a whole number
of frames (a frame's first slot carries the probes, the association LP, the accuracy
prediction and the retrainings; the other slots only the inference delay and the held-out
accuracy), so both sides do the same mix of work:

* ``scan``  - the configuration users get by default: :class:`dtwin_jax.envs.wrappers.VecEnv`
  over B twins inside one jitted ``lax.scan`` rollout of ``--steps`` steps (policy, step and
  auto-reset in the scan);
* ``vmap``  - ``jax.jit(jax.vmap(env.step))`` (policy included) called from a Python loop,
  one call per step, each waited for (which also splits the time between a frame's first
  slot and the other slots), from the same reset twins as ``scan``;
* ``numpy`` - ``tests/envs/edge_numpy_reference.py``: float64 NumPy, ``scipy.optimize.linprog``
  (HiGHS) + the same rounding for the association, hand-written MLP backprop; one twin at a
  time in a Python loop. Its rate does not depend on B, so it is measured on ``--ref-twins``
  twins x ``--ref-steps`` steps, before and after the JAX rows (the mean is quoted);
* ``numpy batched`` - ``benchmarks/peers/edge_numpy_batched.py``: the same reference batched
  over all B twins (float64; every array op on the stacked users of all twins, the retraining
  of every user that needs it in one set of gradient steps; a loop over twins only for the
  association: ``linprog`` + the reference's rounding). Timed at every twin count on
  ``--batched-steps`` steps from slot 0 (best of ``min(--repeats, 2)``); its twins start from
  the models and generators of 3 reference resets, repeated, each with its users placed
  afresh. Before timing, 3 twins are stepped batched and one at a time through the reference
  on the same draws (an auto-reset included) and must agree.

Compile time (``lower().compile()`` with XLA's default options, per twin count) is reported
apart from run time; run time is the best of ``--repeats`` runs from the same initial state
(the median is recorded too). The reset (every model trained from scratch) is timed apart and
is not part of steps/s. Where the time goes is printed per step kind: a frame's first slot
(the retraining of every user's model, computed for all users at fixed shapes, dominates on
the JAX side) and the other slots. The reference retrains only the users that need it. The
CPU may be shared: the load averages before and after are written into the JSON.

Usage: ``python benchmarks/bench_edge.py [--quick]``; writes ``benchmarks/results/
bench_edge.json`` (``--out``). Each side gets one thread
(``one_thread.py``, unless the environment says otherwise, as in the recorded run):
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import one_thread  # noqa: F401  (sets the thread counts before NumPy and JAX load)

# isort: split
import argparse  # noqa: E402
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "envs"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import edge_numpy_reference as ref  # noqa: E402
from peers import edge_numpy_batched  # noqa: E402

from dtwin_jax.envs.edge_retrain import EdgeRetrainEnv  # noqa: E402
from dtwin_jax.envs.edge_retrain.policies import balanced  # noqa: E402
from dtwin_jax.envs.wrappers import VecEnv  # noqa: E402
from dtwin_jax.reporting import machine_info, write_results  # noqa: E402

TWINS = (1, 16, 64, 256, 1024)
QUICK_TWINS = (1, 16)
TARGET_TWINS, TARGET_RATIO = 256, 20.0
TARGET_BATCHED_RATIO = 2.0


def _best_median(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def _split(step_times, frame: int) -> dict:
    """Mean ms of the frame-start steps and of the other steps (runs start at slot 0)."""
    t = np.asarray(step_times) * 1e3
    first = np.arange(len(t)) % frame == 0
    return {"frame_step_ms": float(t[first].mean()), "other_step_ms": float(t[~first].mean())}


def _compiled(fn, *args):
    """``(compiled fn, seconds to lower and compile)``."""
    t0 = time.perf_counter()
    out = jax.jit(fn).lower(*args).compile()
    return out, time.perf_counter() - t0


def bench_scan(env, num_twins: int, steps: int, repeats: int) -> dict:
    """VecEnv in one jitted ``lax.scan`` rollout of ``steps`` steps."""
    venv = VecEnv(env, num_twins)
    params = venv.batch_params()
    policy = jax.vmap(balanced(env))

    def rollout(carry, key):
        def body(c, k):
            obs, state = c
            action = policy(jax.random.split(k, num_twins), obs, state, params)
            obs, state, reward, _, _, info = venv.step(k, state, action, params)
            return (obs, state), (reward.mean(), info["delay"].mean())

        carry, (reward, delay) = jax.lax.scan(body, carry, jax.random.split(key, steps))
        return carry, reward.sum(), delay.mean()

    key = jax.random.PRNGKey(0)
    reset, reset_compile = _compiled(venv.reset, key, params)
    carry = reset(key, params)
    reset_s = _best_median(lambda: reset(key, params), 1)[0]
    run, compile_s = _compiled(rollout, carry, key)  # compiled ahead: no warm-up call
    out = []
    best, median = _best_median(lambda: out.append(run(carry, key)) or out[-1], repeats)
    mean_delay = float(out[-1][2])  # mean system delay (s) of the rollout, a sanity value
    row = {"compile_s": compile_s, "reset_compile_s": reset_compile, "reset_s": reset_s,
           "run_s": best, "run_s_median": median, "steps_per_s": num_twins * steps / best,
           "steps_per_s_median": num_twins * steps / median, "mean_delay_s": mean_delay}
    return row, carry


def bench_vmap(env, carry, steps: int, repeats: int) -> dict:
    """``jax.jit(jax.vmap(step))`` (balanced policy + ``env.step``), one call per step from a
    Python loop (each waited for, which also gives the time of frame and other steps), from
    the batched ``(obs, state)`` of :func:`bench_scan`'s reset."""
    params = env.default_params
    policy = balanced(env)
    obs, state = carry
    num_twins = obs.shape[0]

    def step(key, obs, state):
        return env.step(key, state, policy(key, obs, state, params), params)[:2]

    step_keys = [jax.random.split(jax.random.PRNGKey(2 + t), num_twins) for t in range(steps)]
    step_c, compile_s = _compiled(jax.vmap(step), step_keys[0], obs, state)
    runs = []
    for _ in range(repeats):
        o, s, times = obs, state, []
        for k in step_keys:
            t0 = time.perf_counter()
            o, s = jax.block_until_ready(step_c(k, o, s))
            times.append(time.perf_counter() - t0)
        runs.append(times)
    totals = [sum(t) for t in runs]
    best, median = min(totals), float(np.median(totals))
    return {"compile_s": compile_s, "run_s": best, "run_s_median": median,
            "steps_per_s": num_twins * steps / best,
            "steps_per_s_median": num_twins * steps / median,
            **_split(runs[int(np.argmin(totals))], int(params.frame_length))}


def bench_reference(env, num_twins: int, steps: int) -> dict:
    """The NumPy + SciPy reference, one twin after the other (resets timed apart)."""
    sim = ref.ReferenceEnv.from_env(env)
    reset_s = 0.0
    delays, times = [], []
    for i in range(num_twins):
        t0 = time.perf_counter()
        sim.reset(seed=i)
        reset_s += time.perf_counter() - t0
        for _ in range(steps):
            t0 = time.perf_counter()
            action = ref.balanced_action(sim.rates(), sim.state["assoc"], sim.num_bs, sim.p)
            delays.append(sim.step(action)[3]["delay"])
            times.append(time.perf_counter() - t0)
    run_s = sum(times)
    return {"steps_per_s": num_twins * steps / run_s, "run_s": run_s,
            "reset_s_per_twin": reset_s / num_twins, "twin_steps": num_twins * steps,
            "mean_delay_s": float(np.mean(delays)),
            **_split(times, int(env.default_params.frame_length))}


def reference_states(env, num_twins: int) -> list[dict]:
    """States of ``num_twins`` reference twins just reset (seeds 0, 1, ...)."""
    states = []
    for i in range(num_twins):
        sim = ref.ReferenceEnv.from_env(env)
        sim.reset(seed=i)
        states.append(sim.state)
    return states


def bench_batched(env, states, num_twins: int, steps: int, repeats: int) -> dict:
    """The batched NumPy peer on ``num_twins`` twins, best of ``repeats`` runs."""
    runs = [edge_numpy_batched.measure(env, states, num_twins, steps, seed=i)
            for i in range(repeats)]
    best = max(runs, key=lambda r: r["steps_per_s"])
    return {"steps_per_s": best["steps_per_s"], "run_s": best["seconds"], "steps": steps}


def _load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"twins {QUICK_TWINS}, 20 steps, a short reference run")
    ap.add_argument("--twins", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None,
                    help="steps per timed call (ours; default 100 = one episode, 20 quick)")
    ap.add_argument("--vmap-max-twins", type=int, default=None,
                    help="largest twin count for the plain vmap variant (default: all)")
    ap.add_argument("--ref-twins", type=int, default=None, help="twins of the reference run")
    ap.add_argument("--ref-steps", type=int, default=None, help="steps per reference twin")
    ap.add_argument("--batched-steps", type=int, default=None,
                    help="steps of the batched peer per twin count (default 20, 10 quick)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_edge.json"))
    args = ap.parse_args(argv)
    twins = args.twins or (QUICK_TWINS if args.quick else TWINS)
    steps = args.steps or (20 if args.quick else 100)
    ref_twins = args.ref_twins or (1 if args.quick else 3)
    ref_steps = args.ref_steps or (20 if args.quick else 100)
    batched_steps = args.batched_steps or (10 if args.quick else 20)
    vmap_max = args.vmap_max_twins or max(twins)
    env = EdgeRetrainEnv()
    frame = int(env.default_params.frame_length)
    if steps % frame or ref_steps % frame or batched_steps % frame:
        raise SystemExit(f"--steps, --ref-steps and --batched-steps must be multiples of the "
                         f"frame ({frame})")
    edge_numpy_batched.check_against_reference(env)
    print("batched NumPy peer agrees with the one-twin reference (3 twins, 13 steps)",
          flush=True)
    start_states = reference_states(env, 3)

    load_before = _load()
    before = bench_reference(env, ref_twins, ref_steps)
    print(f"numpy+scipy reference (before): {before['steps_per_s']:.0f} steps/s, "
          f"reset {before['reset_s_per_twin']:.2f} s/twin", flush=True)
    rows = []
    for n in twins:
        scan, carry = bench_scan(env, n, steps, args.repeats)
        row = {"twins": n, "scan": scan}
        if n <= vmap_max:
            row["vmap"] = bench_vmap(env, carry, steps, args.repeats)
        del carry
        row["numpy_batched"] = bench_batched(env, start_states, n, batched_steps,
                                             min(args.repeats, 2))
        rows.append(row)
        vm = row.get("vmap", {}).get("steps_per_s", float("nan"))
        print(f"twins {n}: scan {row['scan']['steps_per_s']:.0f} steps/s "
              f"(compile {row['scan']['compile_s']:.1f} s), vmap {vm:.0f} steps/s, batched "
              f"numpy {row['numpy_batched']['steps_per_s']:.0f} steps/s", flush=True)
    after = bench_reference(env, ref_twins, ref_steps)
    reference = (before["steps_per_s"] + after["steps_per_s"]) / 2
    load_after = _load()
    print(f"numpy+scipy reference (after): {after['steps_per_s']:.0f} steps/s; ratios use the "
          f"mean, {reference:.0f} steps/s")

    print(f"{'twins':>6} {'scan st/s':>10} {'x numpy':>8} {'x batch':>8} {'compile s':>10} "
          f"{'run s':>8} {'vmap st/s':>10} {'x numpy':>8} {'x batch':>8} {'compile s':>10} "
          f"{'batched':>8} {'reset s':>8}")
    for row in rows:
        sc, vm, nb = row["scan"], row.get("vmap"), row["numpy_batched"]
        sc["speedup_vs_numpy"] = sc["steps_per_s"] / reference
        sc["speedup_vs_numpy_batched"] = sc["steps_per_s"] / nb["steps_per_s"]
        line = (f"{row['twins']:>6} {sc['steps_per_s']:>10.0f} {sc['speedup_vs_numpy']:>8.2f} "
                f"{sc['speedup_vs_numpy_batched']:>8.2f} "
                f"{sc['compile_s']:>10.1f} {sc['run_s']:>8.2f} ")
        if vm is not None:
            vm["speedup_vs_numpy"] = vm["steps_per_s"] / reference
            vm["speedup_vs_numpy_batched"] = vm["steps_per_s"] / nb["steps_per_s"]
            line += (f"{vm['steps_per_s']:>10.0f} {vm['speedup_vs_numpy']:>8.2f} "
                     f"{vm['speedup_vs_numpy_batched']:>8.2f} {vm['compile_s']:>10.1f} ")
        else:
            line += f"{'-':>10} {'-':>8} {'-':>8} {'-':>10} "
        print(line + f"{nb['steps_per_s']:>8.0f} {sc['reset_s']:>8.2f}")
    print(f"{'numpy':>6} {reference:>10.0f} {1.0:>8.2f} (one twin at a time, "
          f"{before['twin_steps']} + {after['twin_steps']} steps; reset "
          f"{(before['reset_s_per_twin'] + after['reset_s_per_twin']) / 2:.2f} s/twin)")
    print("where the time goes (ms per step call; frame = a frame's first slot):")
    for row in rows:
        if "vmap" in row:
            vm = row["vmap"]
            print(f"  vmap, {row['twins']:>4} twins: frame {vm['frame_step_ms']:9.2f}, "
                  f"other {vm['other_step_ms']:7.2f}")
    for name, r in (("before", before), ("after", after)):
        print(f"  numpy ({name}), one twin: frame {r['frame_step_ms']:9.2f}, "
              f"other {r['other_step_ms']:7.2f}")
    target = next((r for r in rows if r["twins"] == TARGET_TWINS), None)
    if target is not None:
        ratio = target["scan"]["speedup_vs_numpy"]
        print(f"target: >= {TARGET_RATIO:g}x the reference at {TARGET_TWINS} twins (scan): "
              f"{ratio:.2f}x, {'met' if ratio >= TARGET_RATIO else 'NOT met'}")
        ratio = target["scan"]["speedup_vs_numpy_batched"]
        print(f"target: >= {TARGET_BATCHED_RATIO:g}x the batched peer at {TARGET_TWINS} twins "
              f"(scan): {ratio:.2f}x, {'met' if ratio >= TARGET_BATCHED_RATIO else 'NOT met'}")

    result = {
        "benchmark": "bench_edge",
        "env": "edge-retrain-v0 (M=3, U=10, retraining=incremental, association=round)",
        "policy": "balanced",
        "steps_per_call": steps,
        "frame_length": frame,
        "reference": {"steps_per_s": reference, "before": before, "after": after,
                      "implementation": "tests/envs/edge_numpy_reference.py (float64 NumPy, "
                                        "scipy.optimize.linprog HiGHS + rounding)"},
        "peers": {
            "numpy": {"form": "one twin at a time (Python loop over twins)", "dtype": "float64",
                      "implementation": "tests/envs/edge_numpy_reference.py"},
            "numpy_batched": {"form": "batched over twins (loop over twins for the association "
                                      "LP + rounding only)", "dtype": "float64",
                              "steps": batched_steps,
                              "implementation": "benchmarks/peers/edge_numpy_batched.py"},
        },
        "rows": rows,
        "target": {"twins": TARGET_TWINS, "ratio": TARGET_RATIO,
                   "measured": None if target is None else target["scan"]["speedup_vs_numpy"]},
        "target_batched": {
            "twins": TARGET_TWINS, "ratio": TARGET_BATCHED_RATIO,
            "measured": None if target is None else target["scan"]["speedup_vs_numpy_batched"]},
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine_info(scipy=__import__("scipy").__version__,
                                openblas_num_threads=os.environ.get("OPENBLAS_NUM_THREADS")),
    }
    write_results(result, args.out, config=vars(args))
    return result


if __name__ == "__main__":
    main()

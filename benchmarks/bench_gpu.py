"""Scale on one accelerator: link evaluations/s, and every env's twin-steps/s and device memory
at twin counts up to what the device holds, in one process. Absolute numbers, no CPU peers
(ratios to peers come from the CPU benchmarks; absolute times only from a GPU).

    python benchmarks/bench_gpu.py [--quick] [--max-seconds 420] [--envs ...] [--out PATH]

* ``link``: two kernels, ``jax.jit(jax.vmap(...))`` at growing batches of twins:
  ``rb_sinr``, bench_link's per-(user, BS, RB) SINR (32 users, 8 BSs, 16 RBs per twin; a
  link is one (u, b, r) value: fading, RB allocation and per-RB interference on top of the
  (u, b) budget), and ``user_bs``, the full-load SINR of every user towards every BS at the
  association paper's size (128 users, 22 BSs; a link is one (u, b) value: distance, UMa
  pathloss with its LOS state, shadowing, received power, interference of the other 21 BSs,
  the ratio; about 50 flops). The inputs of the smallest batch are bench_link's (NumPy-drawn)
  and the result is checked against the NumPy peer (``peers/numpy_link.py``); larger batches
  tile them on the device (same math, same work per link). Links/s from the best and the
  median of ``--repeats`` calls.
* ``envs``: association-v0 at the paper's size (22 BSs, 128 users) first, then every registered
  env at its default sizes: soak.py's chunk (``VecEnv`` with auto-reset, uniformly random legal
  actions, a ``lax.scan`` of S steps, carry donated; twins created :data:`RESET_BATCH` at a
  time) at 1, 256, 4096, 65536, 131072, 262144 and 1048576 twins (a compile each: about 10-20
  s). Per count: compile seconds, best and median chunk time (twin-steps/s and agent-steps/s),
  device bytes in use with the twins resident (measured: ``bytes_in_use`` after the reset minus
  before), XLA's temporaries of the chunk, the device's ``peak_bytes_in_use`` so far and the
  non-finite values seen. An env stops growing when the next count's footprint (this count's
  per-twin bytes, x 1.25) would pass 90% of the device's limit (on a CPU: of the host's
  memory, with XLA's size of the carry for the resident bytes), when the device runs out of
  memory (recorded), or when its share of ``--max-seconds`` is spent (the paper-size association
  config, the target of 65,536 twins, gets a double share).

The JSON (``--out``, default ``benchmarks/results/bench_gpu.json``; ``benchmarks/gpu.sh``
names a folder after the device) is rewritten after every measured count, so a run stopped
by a time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_link  # noqa: E402
import soak  # noqa: E402
from peers import numpy_link  # noqa: E402

from dtwin_jax import make  # noqa: E402
from dtwin_jax.envs.registry import registered_envs  # noqa: E402
from dtwin_jax.reporting import machine_info, write_results  # noqa: E402

LINK_BATCHES = (1024, 16384, 131072, 524288)
TWINS = (1, 256, 4096, 65536, 131072, 262144, 1048576)
#: env id -> scan steps per chunk (slicing-v0 simulates 2000 packet slots inside one step)
CHUNK_STEPS = {"association-v0": 10, "dnt-sync-v0": 20, "edge-retrain-v0": 20, "slicing-v0": 2}
PAPER_ASSOCIATION = {"num_bs": 22, "max_users": 128}
#: twins created at once by the reset (``VecEnv(reset_batch=...)``): a new twin's temporaries
#: are several times its state (the H200 run at f1e0c98, without it, failed at 131,072
#: paper-size twins in the reset, not the step)
RESET_BATCH = 4096
#: link kernel -> (one twin's JAX function, its NumPy peer, (U, B, R), input names)
KERNELS = {
    "rb_sinr": (bench_link.twin_sinr, numpy_link.link_sinr, (bench_link.U, bench_link.B,
                bench_link.R), ("ue_xy", "bs_xy", "is_los", "shadow_n", "fading", "alloc")),
    "user_bs": (bench_link.twin_full_load_sinr, numpy_link.full_load_sinr,
                (PAPER_ASSOCIATION["max_users"], PAPER_ASSOCIATION["num_bs"], 1),
                ("ue_xy", "bs_xy", "is_los", "shadow_n")),
}


def memory_stats() -> dict:
    """The first device's allocator statistics ({} where the backend has none, as on CPU)."""
    return jax.devices()[0].memory_stats() or {}


def _is_oom(err: Exception) -> bool:
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def _timed_calls(fn, arg, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls ``fn(arg)``, each waited for."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(arg))
        times.append(time.perf_counter() - t0)
    return times


def link_section(kernel: str, batches, repeats: int) -> list[dict]:
    """Rows of link evaluations/s of one kernel of :data:`KERNELS` (see the module
    docstring)."""
    ours, peer, shape, names = KERNELS[kernel]
    fn = jax.jit(jax.vmap(ours))
    per_twin = int(np.prod(shape)) if kernel == "rb_sinr" else shape[0] * shape[1]
    base = {k: v for k, v in bench_link.make_inputs(batches[0], 0, shape).items() if k in names}
    expect = peer(**base, p=bench_link.PARAMS)
    rows = []
    for n in batches:
        try:
            reps = -(-n // batches[0])
            x = [jnp.tile(jnp.asarray(base[k]), (reps,) + (1,) * (base[k].ndim - 1))[:n]
                 for k in names]
            out = jax.block_until_ready(fn(*x))
            row = {"kernel": kernel, "batch": n, "links_per_call": n * per_twin}
            if n == batches[0]:
                row["max_rel_err_vs_numpy"] = bench_link._max_rel_err(np.asarray(out), expect)
            del out
            times = _timed_calls(lambda args: fn(*args), x, repeats)
            del x
        except Exception as err:  # noqa: BLE001 - an out-of-memory batch ends the section
            if not _is_oom(err):
                raise
            rows.append({"kernel": kernel, "batch": n, "oom": str(err).splitlines()[0][:300]})
            break
        row.update(best_s=min(times), median_s=float(np.median(times)),
                   links_per_s_best=row["links_per_call"] / min(times),
                   links_per_s_median=row["links_per_call"] / float(np.median(times)))
        rows.append(row)
        print(f"{kernel} batch {n:>8}: {row['links_per_s_best']:.3e} links/s (best), "
              f"{row['links_per_s_median']:.3e} (median)", flush=True)
        gc.collect()
    return rows


def measure_twins(env, num_twins: int, chunk_steps: int, repeats: int) -> dict:
    """One row of :func:`env_section` at ``num_twins`` twins."""
    before = memory_stats().get("bytes_in_use")
    init, chunk = soak.make_chunk(env, num_twins, chunk_steps, reset_batch=RESET_BATCH)
    t0 = time.perf_counter()
    carry = jax.block_until_ready(init(jax.random.PRNGKey(0)))
    resident = memory_stats().get("bytes_in_use")
    compiled = chunk.lower(carry).compile()
    compile_s = time.perf_counter() - t0
    analysis = compiled.memory_analysis()
    temp = None if analysis is None else int(analysis.temp_size_in_bytes)
    carry_bytes = None if analysis is None else int(analysis.argument_size_in_bytes)
    carry, stats = compiled(carry)  # warm
    nonfinite = int(stats["nonfinite"])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry, stats = compiled(carry)
        nonfinite += int(stats["nonfinite"])  # device_get: waits for the chunk
        times.append(time.perf_counter() - t0)
    del carry, stats
    steps = num_twins * chunk_steps
    agents = getattr(env, "num_agents", 1)
    best, median = min(times), float(np.median(times))
    resident_bytes = None if before is None else resident - before
    return {
        "twins": num_twins,
        "chunk_steps": chunk_steps,
        "compile_s": compile_s,
        "chunk_best_s": best,
        "chunk_median_s": median,
        "twin_steps_per_s": steps / best,
        "twin_steps_per_s_median": steps / median,
        "agents_per_twin": agents,
        "agent_steps_per_s": steps * agents / best,
        "resident_bytes": resident_bytes,
        "resident_bytes_per_twin": None if resident_bytes is None
        else resident_bytes / num_twins,
        "chunk_temp_bytes": temp,
        "chunk_argument_bytes": carry_bytes,
        "peak_bytes_in_use": memory_stats().get("peak_bytes_in_use"),
        "nonfinite": nonfinite,
    }


def env_section(result: dict, twins, repeats: int, budget_s: float, on_row) -> None:
    """Twin-steps/s and memory of one env configuration (``result["env"]``, its constructor
    arguments ``result["kwargs"]``) at growing twin counts: fills ``result["rows"]`` and
    ``result["stopped"]`` (why it stopped growing), calling ``on_row()`` after each row."""
    env_id = result["env"]
    env = make(env_id, **result["kwargs"])
    kwargs = result["kwargs"]
    steps = CHUNK_STEPS.get(env_id, 8)
    # the device's limit, or this host's memory where the backend keeps no statistics (CPU)
    limit = memory_stats().get("bytes_limit") or (
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    result.update(rows=[], stopped="all counts done")
    start = time.perf_counter()
    for i, k in enumerate(twins):
        try:
            row = measure_twins(env, k, steps, repeats)
        except Exception as err:  # noqa: BLE001 - out of memory ends this env's growth
            if not _is_oom(err):
                raise
            result["rows"].append({"twins": k, "oom": str(err).splitlines()[0][:300]})
            result["stopped"] = f"out of memory at {k} twins"
            break
        finally:
            gc.collect()
        result["rows"].append(row)
        on_row()
        print(f"{env_id} {kwargs or ''} {k:>8} twins: {row['twin_steps_per_s']:.3e} twin-steps/s, "
              f"{row['agent_steps_per_s']:.3e} agent-steps/s, compile {row['compile_s']:.1f} s, "
              f"resident {row['resident_bytes_per_twin'] or float('nan'):.0f} B/twin",
              flush=True)
        if i + 1 == len(twins):
            break
        nxt = twins[i + 1]
        # resident bytes as measured, else (CPU) XLA's size of the chunk's argument, the carry
        resident = row["resident_bytes"] if row["resident_bytes"] is not None else (
            row["chunk_argument_bytes"])
        if resident is not None:
            per_twin = (resident + (row["chunk_temp_bytes"] or 0)) / k
            if per_twin * nxt * 1.25 > 0.9 * limit:
                result["stopped"] = f"{nxt} twins would need ~{per_twin * nxt / 2**30:.0f} GiB"
                break
        # the next count costs a compile like this one's, plus its chunks (on a GPU, far less
        # than nxt / k times these until the device is full)
        if time.perf_counter() - start + 1.5 * row["compile_s"] > budget_s:
            result["stopped"] = f"time share ({budget_s:.0f} s) spent"
            break


def main(argv=None) -> dict:
    """Command line: see the module docstring. Returns the results written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: link batches 16 and 64, twins 1 and 4, 2 repeats")
    ap.add_argument("--max-seconds", type=float, default=420.0,
                    help="time budget of the env section (shared by the configs)")
    ap.add_argument("--envs", nargs="+", choices=registered_envs(), default=None,
                    help="envs to measure (default all; association-v0 also at 22 x 128)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls (default 3; 2 quick)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_gpu.json"))
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    link_batches = (16, 64) if args.quick else LINK_BATCHES
    twins = (1, 4) if args.quick else TWINS
    env_ids = args.envs or registered_envs()
    configs = [(e, dict(PAPER_ASSOCIATION)) for e in env_ids if e == "association-v0"]
    configs += [(e, {}) for e in env_ids]

    result = {"benchmark": "gpu", "machine": machine_info(memory_stats=memory_stats()),
              "link_shapes": {k: dict(zip("UBR", v[2], strict=True)) for k, v in KERNELS.items()},
              "link": [], "envs": []}

    def save():
        write_results(result, args.out, config=vars(args))

    for kernel in KERNELS:
        result["link"] += link_section(kernel, link_batches, repeats)
        save()
    start = time.perf_counter()
    weights = [2.0 if kwargs else 1.0 for _, kwargs in configs]
    for i, (env_id, kwargs) in enumerate(configs):
        left = args.max_seconds - (time.perf_counter() - start)
        share = left * weights[i] / sum(weights[i:])
        section = {"env": env_id, "kwargs": kwargs}
        result["envs"].append(section)
        env_section(section, twins, repeats, share, save)
        save()
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

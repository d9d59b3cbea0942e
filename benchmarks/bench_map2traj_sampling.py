"""Map2Traj sampling throughput: trajectories per second for a batch on one map.

* ours      - ``sample_trajectories`` with the shipped checkpoint
              (``dtwin_jax/data/map2traj_small.msgpack``): DDIM with classifier-free guidance
              (two network passes per step) and road guidance, one jitted ``lax.scan``, for
              each ``--steps``;
* streets   - the NumPy vehicle simulator that made the training data
              (``data.street_trajectories``): needs the street graph, not just a raster;
* waypoint  - ``RandomWaypoint`` rolled out for L steps (jitted): the classical baseline.

Each produces ``--batch`` trajectories of L points on the same 1 km procedural map.
Calls are interleaved (``--repeats`` rounds) so background load hits them alike; the
table shows trajectories/s of the best call and ratios ours / peer (best and median).
Usage: ``python benchmarks/bench_map2traj_sampling.py [--batch 1024] [--steps 20 50]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

from dtwin_jax.mobility import RandomWaypoint
from dtwin_jax.reporting import machine_info, write_results
from dtwin_jax.twins.map2traj.data import street_trajectories
from dtwin_jax.twins.map2traj.diffusion import sample_trajectories
from dtwin_jax.twins.map2traj.maps import procedural_street_map, rasterize, square_bounds
from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT, load_trained


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--road-guidance", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "map2traj_sampling.json")
    )
    args = ap.parse_args(argv)

    config, params, meta = load_trained(SHIPPED_CHECKPOINT)
    length = config.unet.length
    graph = procedural_street_map(12345, 1000.0)
    box = square_bounds(graph)
    raster = rasterize(graph, meta["map_shape"][0], 8.0, box)

    impls = {}
    for n_steps in args.steps:
        fn = jax.jit(
            lambda p, r, k, n=n_steps: sample_trajectories(
                p, r, k, args.batch, num_steps=n, guidance=args.guidance, config=config,
                road_guidance=args.road_guidance,
            )
        )
        impls[f"ours_ddim{n_steps}"] = lambda fn=fn: fn(
            params, raster, jax.random.key(0)
        ).block_until_ready()
    impls["streets"] = lambda: street_trajectories(graph, 0, args.batch, length)
    rwp = RandomWaypoint(args.batch)
    rwp_params = rwp.make_params(area_min=box[0], area_max=box[1], dt=2.0, speed_max=15.0)
    rollout = jax.jit(
        lambda k, p: rwp.rollout(k, rwp.init(k, p), p, length)[1].pos
    )
    impls["waypoint"] = lambda: rollout(jax.random.key(0), rwp_params).block_until_ready()

    compile_s = {name: _timed(fn) for name, fn in impls.items()}  # warm-up (jit compile)
    times = {name: [] for name in impls}
    for _ in range(args.repeats):
        for name, fn in impls.items():
            times[name].append(_timed(fn))

    peers = ["streets", "waypoint"]
    rows = []
    for name, ts in times.items():
        best, median = float(np.min(ts)), float(np.median(ts))
        row = {
            "impl": name,
            "best_s": best,
            "median_s": median,
            "first_call_s": compile_s[name],
            "traj_per_s_best": args.batch / best,
            "traj_per_s_median": args.batch / median,
        }
        if name.startswith("ours"):
            for peer in peers:
                row[f"over_{peer}_best"] = float(np.min(times[peer])) / best
                row[f"over_{peer}_median"] = float(np.median(times[peer])) / median
        rows.append(row)

    print(f"batch={args.batch} trajectories of L={length} points; {args.repeats} interleaved "
          "calls; ratios = ours speed / peer speed (best call, median call)")
    print(f"{'impl':>12} {'traj/s best':>12} {'traj/s med':>11} "
          + " ".join(f"{'x ' + p + ' b':>12} {'x ' + p + ' m':>12}" for p in peers))
    for row in rows:
        line = (f"{row['impl']:>12} {row['traj_per_s_best']:>12.1f}"
                f" {row['traj_per_s_median']:>11.1f}")
        for p in peers:
            if f"over_{p}_best" in row:
                line += f" {row[f'over_{p}_best']:>12.3g} {row[f'over_{p}_median']:>12.3g}"
        print(line)

    result = {
        "benchmark": "map2traj_sampling",
        "batch": args.batch,
        "length": length,
        "ddim_steps": args.steps,
        "guidance": args.guidance,
        "road_guidance": args.road_guidance,
        "repeats": args.repeats,
        "checkpoint_command": meta.get("command"),
        "machine": machine_info(),
        "rows": rows,
    }
    out = Path(args.out)
    write_results(result, out, config=vars(args))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

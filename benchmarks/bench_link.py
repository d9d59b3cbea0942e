"""Link evaluations per second: per-(user, BS, RB) SINR for a batch of twins.

Each twin: U users and B BSs at random positions in a 1 km square, 38.901 UMa pathloss with
a given LOS state, log-normal shadowing (4/6 dB LOS/NLOS), Rayleigh fading per (u, b, r),
one user per (BS, RB), per-RB interference from the other BSs and noise. Random inputs are
drawn once with NumPy and shared, so the three implementations do identical math:

* ours  - ``dtwin_jax.radio`` functions, ``jax.jit(jax.vmap(twin))``;
* numpy - the same math vectorised over the batch (``peers/numpy_link.py``);
* numba - one fused parallel loop (``peers/numba_link.py``, ``prange`` over twins on every
  core), skipped if numba is missing; ``numba_1thread`` - the same loop on one thread, as
  XLA runs ours here (its fused loops use one thread on CPU).

A "link evaluation" is one (user, BS, RB) SINR value; rate = N * U * B * R / time.
Both the best and the median of interleaved calls are reported: on a shared, loaded
machine the best call of a 2-thread loop and its median can differ by several times.
Usage: ``python benchmarks/bench_link.py [--batches 16 256 1024] [--repeats 21]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import numba_link, numpy_link  # noqa: E402

from dtwin_jax import radio  # noqa: E402
from dtwin_jax.reporting import machine_info, write_results

U, B, R = 32, 8, 16
PARAMS = {
    "fc_ghz": 3.5,
    "h_bs": 25.0,
    "h_ut": 1.5,
    "tx_dbm_per_rb": 46.0 - 10.0 * np.log10(R),
    "noise_w_per_rb": float(radio.thermal_noise_w(20e6 / R, 9.0)),
    "sigma_los": radio.SIGMA_SF_UMA_LOS,
    "sigma_nlos": radio.SIGMA_SF_UMA_NLOS,
}


def make_inputs(n: int, seed: int = 0, shape: tuple[int, int, int] = (U, B, R)
                ) -> dict[str, np.ndarray]:
    """Shared float32 inputs for ``n`` twins of ``shape = (U, B, R)`` users, BSs and RBs."""
    U, B, R = shape  # noqa: N806 - the module's shape names, overridden
    rng = np.random.default_rng(seed)
    ue_xy = rng.uniform(0.0, 1000.0, (n, U, 2)).astype(np.float32)
    bs_xy = rng.uniform(0.0, 1000.0, (n, B, 2)).astype(np.float32)
    d_2d = np.linalg.norm(ue_xy[:, :, None] - bs_xy[:, None], axis=-1)
    p_los = np.where(d_2d <= 18, 1.0, 18 / d_2d + np.exp(-d_2d / 63) * (1 - 18 / d_2d))
    is_los = rng.uniform(size=p_los.shape) < p_los
    owner = rng.integers(0, U, (n, B, R))  # the user each BS serves on each RB
    alloc = (owner[:, None] == np.arange(U)[None, :, None, None]).astype(np.float32)
    return {
        "ue_xy": ue_xy,
        "bs_xy": bs_xy,
        "is_los": is_los,
        "shadow_n": rng.standard_normal((n, U, B)).astype(np.float32),
        "fading": rng.exponential(size=(n, U, B, R)).astype(np.float32),
        "alloc": alloc,
    }


def twin_base_power_w(ue_xy, bs_xy, is_los, shadow_n):
    """One twin's received power [U, B] (W) per RB before fading, with the library's
    functions: distances, UMa pathloss, shadowing."""
    p = PARAMS
    d_2d, d_3d = radio.pairwise_distances(ue_xy, bs_xy, p["h_ut"], p["h_bs"])
    pl = radio.uma(d_3d, p["fc_ghz"], p["h_bs"], p["h_ut"], is_los)
    shadow = jnp.where(is_los, p["sigma_los"], p["sigma_nlos"]) * shadow_n
    return radio.received_power_w(p["tx_dbm_per_rb"], pl, shadow)


def twin_sinr(ue_xy, bs_xy, is_los, shadow_n, fading, alloc):
    """One twin's SINR [U, B, R] with the library's functions."""
    # per-(u, b) budget, then fading per RB; rb_sinr guards the [U, B, R] products
    rx = twin_base_power_w(ue_xy, bs_xy, is_los, shadow_n)[..., None] * fading
    return radio.rb_sinr(rx, alloc, PARAMS["noise_w_per_rb"])[2]


def twin_full_load_sinr(ue_xy, bs_xy, is_los, shadow_n):
    """One twin's SINR [U, B] towards each BS with every other BS transmitting (no fading,
    no RBs): one user-BS link evaluation per entry."""
    rx = twin_base_power_w(ue_xy, bs_xy, is_los, shadow_n)
    return radio.full_load_sinr(rx, PARAMS["noise_w_per_rb"])


_ours = jax.jit(jax.vmap(twin_sinr))
_ARGS = ("ue_xy", "bs_xy", "is_los", "shadow_n", "fading", "alloc")


def run_ours(x):
    return _ours(*(x[k] for k in _ARGS)).block_until_ready()


def run_numpy(x):
    return numpy_link.link_sinr(**x, p=PARAMS)


def run_numba(x):
    return numba_link.link_sinr(**x, p=PARAMS)


def run_numba_1thread(x):
    """The numba loop on one thread (ours runs its fused loops on one thread)."""
    threads = numba_link.numba.get_num_threads()
    numba_link.numba.set_num_threads(1)
    try:
        return numba_link.link_sinr(**x, p=PARAMS)
    finally:
        numba_link.numba.set_num_threads(threads)


def prepare(name: str, x: dict) -> dict:
    """Inputs where each implementation keeps them: device arrays for JAX (as in a twin,
    whose state lives on the device), host arrays for the peers. Not timed."""
    return {k: jax.device_put(v) for k, v in x.items()} if name == "ours" else x


def _time(fn, x) -> float:
    """Wall time of one call (s)."""
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def _max_rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 256, 1024])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_link.json"))
    args = ap.parse_args(argv)

    impls = {"ours": run_ours, "numpy": run_numpy}
    if numba_link.available():
        impls["numba"] = run_numba
        impls["numba_1thread"] = run_numba_1thread
    else:
        print("numba not installed: skipping the fused-loop column")

    rows = []
    for n in args.batches:
        x = make_inputs(n, seed=n)
        xs = {name: prepare(name, x) for name in impls}
        outs = {name: np.asarray(fn(xs[name])) for name, fn in impls.items()}  # warm-up
        err = {name: _max_rel_err(o, outs["numpy"]) for name, o in outs.items() if name != "numpy"}
        for name, e in err.items():
            if e > 1e-3:
                raise AssertionError(f"{name} disagrees with numpy at batch {n}: max rel err {e}")
        # interleave the implementations so background load hits them alike
        times = {name: [] for name in impls}
        for _ in range(args.repeats):
            for name, fn in impls.items():
                times[name].append(_time(fn, xs[name]))
        links = n * U * B * R
        row = {"batch": n, "links_per_twin": U * B * R, "max_rel_err_vs_numpy": err}
        for stat, reduce in (("best", np.min), ("median", np.median)):
            t = {name: float(reduce(v)) for name, v in times.items()}
            for name in impls:
                row[f"{name}_{stat}_s"] = t[name]
                row[f"{name}_{stat}_links_per_s"] = links / t[name]
            for name in impls:
                if name != "ours":
                    row[f"ours_over_{name}_{stat}"] = t[name] / t["ours"]
        rows.append(row)

    peers = [k for k in impls if k != "ours"]
    print(f"U={U} B={B} R={R}; {args.repeats} interleaved calls each; links/s from the best "
          "call; ratios = ours speed / peer speed (best call, median call)")
    header = f"{'batch':>6} " + " ".join(f"{k + ' links/s':>16}" for k in impls)
    print(header + "".join(f" {'x ' + k + ' best':>13} {'x ' + k + ' med':>12}" for k in peers))
    for row in rows:
        line = f"{row['batch']:>6} " + " ".join(
            f"{row[k + '_best_links_per_s']:>16.3e}" for k in impls)
        for k in peers:
            line += (f" {row[f'ours_over_{k}_best']:>13.2f}"
                     f" {row[f'ours_over_{k}_median']:>12.2f}")
        print(line)

    result = {
        "benchmark": "link",
        "shape": {"U": U, "B": B, "R": R},
        "params": PARAMS,
        "repeats": args.repeats,
        "machine": machine_info(numba=getattr(numba_link.numba, "__version__", None)),
        "rows": rows,
    }
    out = Path(args.out)
    write_results(result, out, config=vars(args))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()

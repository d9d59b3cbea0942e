"""The ``dtwin`` command.

``dtwin list`` shows the envs, learners, experiments and papers; ``dtwin train`` runs PPO in a
registered env (or an experiment preset) into a run directory (:mod:`dtwin_jax.runs`),
``dtwin resume`` and ``dtwin eval`` continue and evaluate one; ``dtwin bench``,
``dtwin sample-trajectories`` and ``dtwin reproduce`` call the benchmarks, the shipped
Map2Traj model and the paper reproductions. ``demo`` and ``envs`` are kept as before.

Every argument is checked before any work starts: a bad one prints one line to stderr
(``dtwin <command>: error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MAX_SEED = 2**32 - 1
MAX_TRAJECTORIES = 4096
#: ``dtwin reproduce`` names -> (experiment module, paper)
PAPERS = {
    "lvm-dt": ("lvm_dt", "Tao, Xu, You: parallel digital twins with DRL for user association "
                         "(arXiv 2410.07611)"),
    "map2traj": ("map2traj", "Map2Traj: street-map-conditioned diffusion trajectories"),
    "dnt-sync": ("dnt_sync", "digital network twin synchronisation"),
    "slicing-dt": ("slicing_dt", "digital-twin-assisted network slicing"),
    "two-timescale": ("two_timescale", "two-timescale edge retraining"),
}


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _check_out_dir(out: str) -> str | None:
    """Create ``out`` if needed and write a temp file in it; an error message, or None if fine."""
    if os.path.exists(out) and not os.path.isdir(out):
        return f"--out {out!r} exists and is not a directory"
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        return f"--out {out!r} cannot be created: {err.strerror or err}"
    try:
        with tempfile.TemporaryFile(dir=out, prefix=".dtwin-write-test-"):
            pass
    except OSError as err:
        return f"--out {out!r} is not writable: {err.strerror or err}"
    return None


def _check_demo_args(args: argparse.Namespace) -> str | None:
    """The first problem with the ``demo`` arguments as a message, or None if all are valid."""
    if not 0 <= args.seed <= MAX_SEED:
        return f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}"
    return _check_out_dir(args.out)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dtwin_jax.experiments.lvm_dt import run_demo

    summary = run_demo(out_dir=args.out, seed=args.seed)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def _cmd_envs(args: argparse.Namespace) -> int:
    from dtwin_jax.envs import registered_envs

    print("\n".join(registered_envs()))
    return 0


def _papers_present() -> dict[str, tuple[str, str]]:
    """The :data:`PAPERS` whose experiment module exists in this checkout."""
    return {name: entry for name, entry in PAPERS.items()
            if importlib.util.find_spec(f"dtwin_jax.experiments.{entry[0]}") is not None}


def _cmd_list(args: argparse.Namespace) -> int:
    from dtwin_jax.envs import registered_envs
    from dtwin_jax.runs import list_experiments, list_learners

    print("envs (dtwin train <env> [--set ppo.*|env.*|params.*|run.*=...]):")
    for env_id in registered_envs():
        print(f"  {env_id}")
    print("learners (dtwin train uses ppo):")
    for name, doc in list_learners().items():
        print(f"  {name:10s} {doc}")
    print("experiments (dtwin train <experiment> [--set preset=NAME] [--set field=...]):")
    for name, presets in list_experiments().items():
        print(f"  {name:14s} presets: {', '.join(presets)}")
    print("papers (dtwin reproduce <paper> [experiment options]):")
    for name, (module, title) in _papers_present().items():
        print(f"  {name:14s} {title} [experiments/{module}.py]")
    return 0


def _default_out(target: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{target}-{stamp}")


def _check_train_args(args: argparse.Namespace) -> str | None:
    from dtwin_jax.envs import registered_envs
    from dtwin_jax.runs import RunError, parse_sets, resolve_experiment, resolve_ppo_spec

    try:
        sets = parse_sets(args.set)
        if args.target in registered_envs():
            args.resolved = ("ppo", *resolve_ppo_spec(args.target, sets))
        else:
            args.resolved = ("experiment", *resolve_experiment(args.target, sets))
    except RunError as err:
        return str(err)
    args.out = args.out or _default_out(args.target)
    if os.path.exists(os.path.join(args.out, "config.json")):
        return f"--out {args.out!r} already holds a run (dtwin resume {args.out})"
    return _check_out_dir(args.out)


def _print_summary(summary: dict) -> None:
    for key, value in summary.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, dict | list) else value}")


def _cmd_train(args: argparse.Namespace) -> int:
    from dtwin_jax import runs

    kind, *resolved = args.resolved
    if kind == "ppo":
        spec, env, params = resolved
        summary = runs.start_ppo_run(args.out, spec, env, params, progress=not args.no_progress)
    else:
        module, preset, config = resolved
        summary = runs.run_experiment(args.out, module, preset, config)
    _print_summary({"run_dir": args.out, **summary})
    return 130 if summary["status"] == "interrupted" else 0


def _check_run_dir(args: argparse.Namespace) -> str | None:
    if not os.path.isdir(args.run_dir):
        return f"run directory {args.run_dir!r} does not exist"
    if not os.path.isfile(os.path.join(args.run_dir, "config.json")):
        return f"{args.run_dir!r} is not a run directory (no config.json)"
    for name in ("step", "steps", "twins", "seed"):
        value = getattr(args, name, None)
        if value is not None and not 0 <= value <= MAX_SEED:
            return f"--{name} must be an integer in [0, {MAX_SEED}], got {value}"
    for name in ("steps", "twins"):
        if getattr(args, name, None) == 0:
            return f"--{name} must be at least 1"
    return None


def _cmd_resume(args: argparse.Namespace) -> int:
    from dtwin_jax import runs

    try:
        summary = runs.resume_ppo_run(args.run_dir, args.step, progress=not args.no_progress)
    except runs.RunError as err:
        print(f"dtwin resume: error: {err}", file=sys.stderr)
        return 2
    _print_summary({"run_dir": args.run_dir, **summary})
    return 130 if summary["status"] == "interrupted" else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from dtwin_jax import runs

    try:
        result = runs.evaluate_run(args.run_dir, args.steps, args.twins, args.seed)
    except runs.RunError as err:
        print(f"dtwin eval: error: {err}", file=sys.stderr)
        return 2
    _print_summary(result)
    return 0


def _benchmarks_dir() -> Path:
    from dtwin_jax.reporting import PACKAGE_ROOT

    return PACKAGE_ROOT / "benchmarks"


def _check_bench_args(args: argparse.Namespace) -> str | None:
    if not (_benchmarks_dir() / "run_all.py").is_file():
        return (f"no benchmarks/run_all.py next to the package ({_benchmarks_dir()}); the "
                "benchmarks come with a source checkout")
    return None


def _cmd_bench(args: argparse.Namespace) -> int:
    run_all = _benchmarks_dir() / "run_all.py"
    return subprocess.call([sys.executable, str(run_all), *(["--quick"] if args.quick else [])])


def _check_sample_args(args: argparse.Namespace) -> str | None:
    from dtwin_jax.twins.map2traj import maps

    if not 1 <= args.n <= MAX_TRAJECTORIES:
        return f"--n must be an integer in [1, {MAX_TRAJECTORIES}], got {args.n}"
    if not 0 <= args.seed <= MAX_SEED:
        return f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}"
    if not 1 <= args.ddim_steps <= 1000:
        return f"--ddim-steps must be an integer in [1, 1000], got {args.ddim_steps}"
    if args.map not in maps.available_real_maps() and not os.path.isfile(args.map):
        return (f"--map {args.map!r} is neither a bundled map {maps.available_real_maps()} nor "
                "an existing .npz file")
    try:
        args.graph = maps.load_osm_graph(args.map)
    except (OSError, ValueError) as err:
        return f"--map {args.map!r}: {err}"
    stem = Path(args.map).stem
    args.out = args.out or f"trajectories_{stem}.npz"
    if not args.out.endswith(".npz"):
        return f"--out {args.out!r} must end with .npz"
    return _check_out_dir(os.path.dirname(os.path.abspath(args.out)))


def _cmd_sample(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from dtwin_jax import plots
    from dtwin_jax.experiments.map2traj import _sample
    from dtwin_jax.twins.map2traj import data, maps
    from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT, load_trained

    model, params, meta = load_trained(SHIPPED_CHECKPOINT)
    box = maps.square_bounds(args.graph)
    raster = maps.rasterize(args.graph, meta["map_shape"][0], 8.0, box)
    unit = _sample(params, raster, jax.random.PRNGKey(args.seed), args.n, args.ddim_steps, 2.5,
                   0.0, model, 1.0)
    trajs = np.asarray(data.denormalize(np.asarray(unit), box), np.float32)
    np.savez(args.out + ".tmp.npz", trajectories=trajs, bounds=box)
    os.replace(args.out + ".tmp.npz", args.out)
    figure = args.out[: -len(".npz")] + ".png"
    ax = plots.map_with_trajectories(np.asarray(args.graph.nodes), np.asarray(args.graph.edges),
                                     trajs[:32], title=f"Map2Traj on {args.map}")
    plots.save(ax.figure, figure)
    _print_summary({"trajectories": args.out, "shape [N, L, 2] (m)": list(trajs.shape),
                    "figure": figure, "model": str(SHIPPED_CHECKPOINT)})
    return 0


def _check_reproduce_args(args: argparse.Namespace) -> str | None:
    present = _papers_present()
    if args.paper not in present:
        missing = sorted(set(PAPERS) - set(present))
        extra = f"; not in this version yet: {missing}" if missing else ""
        return f"unknown paper {args.paper!r}; allowed: {sorted(present)}{extra}"
    return None


def _cmd_reproduce(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"dtwin_jax.experiments.{PAPERS[args.paper][0]}")
    module.main(args.options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``dtwin`` parser; each sub-command sets ``func`` and, if it has one, ``check``."""
    parser = _OneLineParser(
        prog="dtwin", description="Digital twins of wireless networks in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train PPO user association in parallel twins for a few minutes and plot the result",
    )
    demo.add_argument(
        "--out", default="runs/demo",
        help="output folder, created if missing, must be writable (default: runs/demo)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help=f"random seed in [0, {MAX_SEED}] (default: 0)"
    )
    demo.set_defaults(func=_cmd_demo, check=_check_demo_args)
    envs = sub.add_parser("envs", help="list the registered environment ids")
    envs.set_defaults(func=_cmd_envs, check=None)

    listing = sub.add_parser("list", help="list envs, learners, experiments and papers")
    listing.set_defaults(func=_cmd_list, check=None)

    train = sub.add_parser(
        "train", help="train PPO in a registered env, or run an experiment, into a run directory")
    train.add_argument("target", help="an env id (PPO) or an experiment name (see dtwin list)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a setting (repeatable): ppo.<PPOConfig field>, env.<constructor arg>, "
             "params.<params field>, run.<seed|chunk_updates|keep_checkpoints>; the prefix may "
             "be left out when the name is unambiguous; for an experiment: preset=NAME and "
             "its config fields")
    train.add_argument("--out", default=None,
                       help="run directory (default: runs/<target>-<date>-<time>)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train, check=_check_train_args)

    resume = sub.add_parser("resume", help="continue an interrupted PPO run from a checkpoint")
    resume.add_argument("run_dir")
    resume.add_argument("--step", type=int, default=None,
                        help="checkpoint step to restart from (default: the latest)")
    resume.add_argument("--no-progress", action="store_true", help="no progress bar")
    resume.set_defaults(func=_cmd_resume, check=_check_run_dir)

    evaluate = sub.add_parser("eval", help="evaluate a PPO run's latest checkpoint greedily")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--steps", type=int, default=256, help="steps per twin (default 256)")
    evaluate.add_argument("--twins", type=int, default=None,
                          help="twins in parallel (default: the run's num_envs)")
    evaluate.add_argument("--seed", type=int, default=None,
                          help="seed of the evaluation twins (default: the run's seed + 1)")
    evaluate.set_defaults(func=_cmd_eval, check=_check_run_dir)

    bench = sub.add_parser("bench", help="run benchmarks/run_all.py, or list the benchmarks")
    bench.add_argument("--quick", action="store_true", help="small sizes (passed to run_all)")
    bench.set_defaults(func=_cmd_bench, check=_check_bench_args)

    sample = sub.add_parser(
        "sample-trajectories", help="sample vehicle trajectories for a street map from the "
                                    "shipped Map2Traj diffusion model")
    sample.add_argument("--map", required=True,
                        help="a bundled map name (dtwin list) or a street-map .npz file")
    sample.add_argument("--n", type=int, required=True,
                        help=f"number of trajectories, 1..{MAX_TRAJECTORIES}")
    sample.add_argument("--out", default=None,
                        help="output .npz (default: trajectories_<map>.npz); a .png beside it")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--ddim-steps", type=int, default=50,
                        help="DDIM denoising steps (default 50)")
    sample.set_defaults(func=_cmd_sample, check=_check_sample_args)

    reproduce = sub.add_parser("reproduce", help="run a paper reproduction's main "
                                                 "(options after the name go to it)")
    reproduce.add_argument("paper", help=f"one of {sorted(PAPERS)} (those present)")
    reproduce.add_argument("options", nargs=argparse.REMAINDER,
                           help="passed on, e.g. --preset small --out DIR")
    reproduce.set_defaults(func=_cmd_reproduce, check=_check_reproduce_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, check every argument, then run the sub-command; returns the exit status.

    A bad argument prints one line to stderr and returns 2 (argparse usage errors, such as a
    non-integer ``--seed``, exit with status 2 through SystemExit) before any work starts.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = args.check(args) if args.check is not None else None
    if problem is not None:
        print(f"{parser.prog} {args.command}: error: {problem}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

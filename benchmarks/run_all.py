"""Run every benchmark of ``benchmarks/`` (quick or full), one subprocess each, and summarise.

    python benchmarks/run_all.py [--quick] [--out DIR] [--only link slicing]

Each script runs in its own interpreter (fresh JAX state, its own CPU pinning) through its
``main(argv)``, with its JSON written into ``--out`` (for scripts without an ``--out`` flag the
module's ``RESULTS`` folder is pointed there). ``--quick`` passes each script the smallest
settings listed in :data:`SUITE` (a CI-sized smoke run, not a measurement); the full mode
passes none (each script's defaults). A failing script is reported and the others still run.
Writes ``run_all.json`` (or ``run_all_quick.json``: per script the status, seconds and JSON
path, plus provenance with the machine and device) and prints one table. Exit status 1 if any
script failed. A full run into ``benchmarks/results`` then regenerates the README's benchmark
table and ``scaling.png`` (:mod:`report`). ``--quick`` writes to ``benchmarks/results/quick``
unless ``--out`` says otherwise, so a smoke run never replaces a measurement.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, how --out is given, quick argv). "file": --out takes the JSON path;
# "dir": --out takes the folder; "results": no flag, the module-level RESULTS folder is used.
SUITE: dict[str, tuple[str, str, list[str]]] = {
    "link": ("bench_link.py", "file", ["--batches", "16", "--repeats", "3"]),
    "assignment": ("bench_assignment.py", "file",
                   ["--batches", "16", "--sizes", "12", "--kinds", "uniform",
                    "--dtypes", "float32", "--repeats", "2", "--optax-max-s", "2"]),
    "association": ("bench_association.py", "results",
                    ["--quick", "--max-twins", "16", "--peer-steps", "20"]),
    "autoreset": ("bench_autoreset.py", "dir", ["--quick", "--repeats", "1"]),
    "dnt": ("bench_dnt.py", "file",
            ["--quick", "--twins", "1", "16", "--steps", "5", "--ref-steps", "20",
             "--repeats", "1"]),
    "slicing": ("bench_slicing.py", "file", ["--quick"]),
    "edge": ("bench_edge.py", "file",
             ["--quick", "--twins", "1", "16", "--steps", "10", "--ref-steps", "10",
              "--repeats", "1"]),
    "map2traj_sampling": ("bench_map2traj_sampling.py", "file",
                          ["--batch", "64", "--steps", "5", "--repeats", "1"]),
    "memory": ("bench_memory.py", "file", ["--quick", "--envs", "association-v0"]),
    "generated_loop": ("bench_generated_loop.py", "results",
                       ["--twins", "2", "--users", "8", "--updates", "1", "--ddim-steps", "2",
                        "--repeats", "1"]),
    "soak": ("soak.py", "file", ["--quick"]),
    "learners": ("bench_learners.py", "file", ["--quick", "--repeats", "1"]),
}

# Loads a benchmark script by path, points its RESULTS folder at --out when it has one and
# calls its main(argv): argv[1] script, argv[2] results folder, the rest the script's argv.
_RUNNER = """
import importlib.util, os, sys
path, results, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, os.path.dirname(path))  # as when the script is run directly
spec = importlib.util.spec_from_file_location("bench_module", path)
module = importlib.util.module_from_spec(spec)
sys.modules["bench_module"] = module
spec.loader.exec_module(module)
if hasattr(module, "RESULTS"):
    module.RESULTS = results
module.main(argv)
"""


def command(name: str, out: Path, quick: bool) -> tuple[list[str], Path | None]:
    """The subprocess argv of benchmark ``name`` and the JSON path it will write (None when
    the script names its file itself, in ``out``)."""
    script, how, quick_argv = SUITE[name]
    argv = list(quick_argv) if quick else []
    stem = Path(script).stem + ("_quick" if quick else "")
    target = None
    if how == "file":
        target = out / f"{stem}.json"
        argv += ["--out", str(target)]
    elif how == "dir":
        argv += ["--out", str(out)]
    return [sys.executable, "-c", _RUNNER, str(HERE / script), str(out), *argv], target


def run_one(name: str, out: Path, quick: bool, timeout_s: float, log) -> dict:
    """Run benchmark ``name``; its stdout and stderr go to ``log``. Returns its summary row."""
    cmd, target = command(name, out, quick)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p))
    start = time.perf_counter()
    before = {p: p.stat().st_mtime for p in out.glob("*.json")}
    try:
        res = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                             timeout=timeout_s, check=False)
        status = "ok" if res.returncode == 0 else f"exit {res.returncode}"
    except subprocess.TimeoutExpired:
        status = f"timeout {timeout_s:g} s"
    seconds = time.perf_counter() - start
    written = sorted(str(p) for p in out.glob("*.json")
                     if p.stat().st_mtime != before.get(p))
    if target is not None and status == "ok" and not target.exists():
        status = "no json"
    return {"name": name, "status": status, "seconds": round(seconds, 2), "json": written}


def main(argv=None) -> dict:
    """Command line: see the module docstring. Returns the summary written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest settings (a smoke run)")
    ap.add_argument("--out", default=None,
                    help="results folder (default benchmarks/results, with --quick "
                         "benchmarks/results/quick, so smoke runs never replace results)")
    ap.add_argument("--only", nargs="+", choices=sorted(SUITE), default=None,
                    help="run these benchmarks only")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per benchmark (default: 600 quick, none full)")
    args = ap.parse_args(argv)
    out = Path(args.out or (HERE / "results" / "quick" if args.quick else HERE / "results"))
    out.mkdir(parents=True, exist_ok=True)
    timeout_s = args.timeout or (600.0 if args.quick else None)
    names = args.only or list(SUITE)
    rows = []
    with open(out / ("run_all_quick.log" if args.quick else "run_all.log"), "w") as log:
        for name in names:
            print(f"running {name} ...", flush=True)
            log.write(f"===== {name}\n")
            log.flush()
            rows.append(run_one(name, out, args.quick, timeout_s, log))
            log.flush()
    width = max(len(r["name"]) for r in rows)
    print(f"\n{'benchmark':<{width}}  {'status':<12} {'seconds':>8}  json")
    for r in rows:
        files = ", ".join(os.path.basename(p) for p in r["json"]) or "-"
        print(f"{r['name']:<{width}}  {r['status']:<12} {r['seconds']:>8.1f}  {files}")
    from dtwin_jax.reporting import machine_info, write_results

    summary = {"benchmark": "run_all", "quick": args.quick, "machine": machine_info(),
               "rows": rows}
    path = out / ("run_all_quick.json" if args.quick else "run_all.json")
    write_results(summary, path, config=vars(args))
    print("wrote", path)
    if not args.quick and out.resolve() == (HERE / "results").resolve():
        import report

        report.main([])
    return summary


if __name__ == "__main__":
    sys.exit(0 if all(r["status"] == "ok" for r in main()["rows"]) else 1)

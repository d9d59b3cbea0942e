"""Helpers for experiments and benchmarks: machine description, provenance, atomic JSON and
Student-t intervals over seeds.

Every results JSON records where it came from (:func:`provenance`): the git commit and whether
the working tree had uncommitted changes, the command line, the configuration, the machine and
the date. Experiments put ``"provenance": provenance(config)`` into their results when a run
starts; benchmarks write through :func:`write_results`, which adds it.

Every experiment reports a mean over seeds with the half-width of its Student-t interval
through :func:`t_interval` (arrays) or :func:`t_record` (the ``{"mean", "ci95", "n"}`` record
of the results files).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

# The checkout this package was imported from (the folder holding ``dtwin_jax/``).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"


def machine_info(**extra) -> dict:
    """Host, platform, CPU count, versions, first device, XLA flags and load (+ ``extra``)."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "device_kind": jax.devices()[0].device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **extra,
    }


def _git(repo_dir: Path, *args: str) -> str | None:
    """stdout of ``git -C repo_dir args`` (stripped), or None if git fails or is missing."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo_dir), *args],
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # status must not take index.lock
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(repo_dir: str | os.PathLike | None = None) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the git checkout rooted at ``repo_dir``.

    ``repo_dir`` defaults to :data:`PACKAGE_ROOT`. It must be the top level of a checkout (a
    package installed inside some other repository, say a virtual environment in it, does not
    report that repository's commit). ``dirty`` is True when ``git status --porcelain`` lists
    anything: modified, staged or untracked (not ignored) files. Outside a git checkout, or
    without git, both values are ``"unknown"``. The environment overrides all of this when it
    names the commit a copy was made from: ``DTWIN_GIT_COMMIT`` (and ``DTWIN_GIT_DIRTY``,
    ``"0"`` or ``"1"``; unknown when unset), as when a checkout is copied to a GPU host without
    its ``.git``, or with a stale one.
    """
    named = os.environ.get("DTWIN_GIT_COMMIT")
    if named:
        dirty = {"0": False, "1": True}.get(os.environ.get("DTWIN_GIT_DIRTY", ""), UNKNOWN)
        return {"commit": named, "dirty": dirty}
    root = Path(PACKAGE_ROOT if repo_dir is None else repo_dir).resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    commit = _git(root, "rev-parse", "HEAD") if top else None
    status = _git(root, "status", "--porcelain") if commit else None
    if top is None or Path(top).resolve() != root or commit is None or status is None:
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    return {"commit": commit, "dirty": bool(status)}


def _config_dict(config: Any) -> Any:
    """``config`` as JSON-ready data: a dataclass, ``to_dict()`` object, Namespace or mapping."""
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif isinstance(config, argparse.Namespace):
        config = vars(config)
    if not isinstance(config, Mapping):
        raise TypeError(
            "config must be None, a dataclass, an argparse.Namespace or a mapping, "
            f"got {type(config).__name__}"
        )
    try:
        return json.loads(json.dumps(dict(config)))
    except (TypeError, ValueError) as err:
        raise TypeError(f"config must be JSON-serialisable: {err}") from err


def provenance(config: Any = None, *, repo_dir: str | os.PathLike | None = None) -> dict:
    """Where a result comes from: ``commit``, ``dirty``, ``command``, ``cwd``, ``config``,
    ``machine`` and ``date``.

    ``command`` is ``sys.argv``; ``config`` is ``config`` as JSON data (see ``_config_dict``;
    TypeError if it cannot be); ``machine`` is :func:`machine_info`; ``date`` is the UTC time
    in ISO 8601. ``commit``/``dirty`` come from :func:`git_state` of ``repo_dir``.
    """
    return {
        **git_state(repo_dir),
        "command": list(sys.argv),
        "cwd": os.getcwd(),
        "config": _config_dict(config),
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON through a temp file in the same folder, then rename.

    A failure part-way (for example a value JSON cannot encode) leaves any previous file at
    ``path`` untouched and no temp file behind.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are ordinary shared files
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(results: Mapping, path: str | os.PathLike, config: Any = None) -> dict:
    """Write ``results`` plus a ``"provenance"`` entry atomically (:func:`write_json`).

    The entry is :func:`provenance` of ``config``, made now, unless ``results`` already carries
    one (recorded when a long run started), which is kept. Returns the dict written.
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping, got {type(results).__name__}")
    out = dict(results)
    if "provenance" not in out:
        out["provenance"] = provenance(config)
    write_json(out, path)
    return out


def t_interval(samples, axis: int | None = 0, level: float = 0.95, skip_nan: bool = False):
    """Mean and half-width of the Student-t ``level`` interval of the mean of ``samples``
    along ``axis`` (None: all entries).

    With n samples, sample standard deviation s (ddof 1) and t the ``(1 + level) / 2``
    quantile of ``scipy.stats.t`` with n - 1 degrees of freedom, the half-width is
    ``t s / sqrt(n)``. One sample (n = 1) has no spread estimate: its half-width is 0, the
    interval collapsing to the value (what the results files record for a single seed); no
    sample gives NaN for both. ``skip_nan=True`` leaves NaN entries out, n counting the others
    per position (curves whose first entries are NaN for some seeds). Returns Python floats
    when the reduction leaves a scalar, else two float64 arrays.
    """
    from scipy import stats

    from dtwin_jax._checks import check_float

    check_float("level", level, 0.0, 1.0, lo_open=True, hi_open=True)
    x = np.asarray(samples, np.float64)
    if axis is None:
        x, axis = x.ravel(), 0
    present = ~np.isnan(x) if skip_nan else np.ones(x.shape, bool)
    n = present.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, x, 0.0).sum(axis) / n
        dev = np.where(present, x - np.expand_dims(mean, axis), 0.0)
        sd = np.sqrt((dev ** 2).sum(axis) / np.maximum(n - 1, 1))
        q = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1))
        half = np.where(n > 1, q * sd / np.sqrt(n), np.where(n == 1, 0.0, np.nan))
    if np.ndim(mean) == 0:
        return float(mean), float(half)
    return mean, half


def t_record(samples, values: bool = False) -> dict:
    """The results files' record of a mean over seeds: ``{"mean", "ci95", "n"}`` for all
    entries of ``samples`` (:func:`t_interval` at 95%; ``ci95`` is the half-width, 0 for one
    sample), plus the samples as ``"values"`` with ``values=True``. JSON-ready."""
    x = np.asarray(samples, np.float64).ravel()
    mean, half = t_interval(x)
    out = {"mean": mean, "ci95": half, "n": int(x.size)}
    if values:
        out["values"] = x.tolist()
    return out

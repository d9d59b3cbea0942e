"""Helpers for experiments and benchmarks: machine description and atomic JSON writes."""

from __future__ import annotations

import json
import os
import platform
import tempfile

import jax
import numpy as np


def machine_info(**extra) -> dict:
    """Platform, CPU count, versions, first device, XLA flags and load of this run (+ ``extra``)."""
    return {
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


def write_json(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON through a temp file in the same folder, then rename.

    A failure part-way leaves any previous file at ``path`` untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise

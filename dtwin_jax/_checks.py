"""Validation of constructor arguments and parameters, run before anything is traced.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong kind of value) whose
message names the field, the value given and the allowed range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int after checking ``lo <= value <= hi``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range; allowed {_range(lo, hi)}")
    return value


def check_int_tuple(name: str, values, lo: int | None = None,
                    hi: int | None = None) -> tuple[int, ...]:
    """Return ``values`` (any sequence, e.g. layer widths) as a tuple of ints, entry ``i``
    checked by :func:`check_int` under the name ``name[i]``."""
    return tuple(check_int(f"{name}[{i}]", v, lo, hi) for i, v in enumerate(values))


def check_bool(name: str, value) -> bool:
    """Return ``value`` after checking it is a Python bool (not 0/1 or a NumPy bool)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_float(
    name: str,
    value,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a finite float after checking it lies in the given range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if lo is not None:
        bad |= value <= lo if lo_open else value < lo
    if hi is not None:
        bad |= value >= hi if hi_open else value > hi
    if bad:
        allowed = _range(lo, hi, lo_open, hi_open)
        raise ValueError(f"{name}={value} is out of range; allowed finite values in {allowed}")
    return value


def check_array(
    name: str,
    value,
    shape: Sequence[int | None] | None = None,
    lo: float | None = None,
    hi: float | None = None,
) -> np.ndarray:
    """Return ``value`` as a NumPy array after checking shape (None = any), finiteness, range."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from err
    if shape is not None:
        if arr.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, arr.shape, strict=True)
        ):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} has shape {arr.shape}; expected {want}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; all entries must be finite")
    if lo is not None and arr.size and arr.min() < lo:
        raise ValueError(f"{name} has entry {arr.min()} below the allowed range {_range(lo, hi)}")
    if hi is not None and arr.size and arr.max() > hi:
        raise ValueError(f"{name} has entry {arr.max()} above the allowed range {_range(lo, hi)}")
    return arr


def check_probs(name: str, value, axis: int = -1, atol: float = 1e-6) -> np.ndarray:
    """Check that ``value`` holds probabilities in [0, 1] summing to 1 along ``axis``."""
    arr = check_array(name, value, lo=0.0, hi=1.0)
    sums = arr.sum(axis=axis)
    if not np.allclose(sums, 1.0, atol=atol):
        raise ValueError(f"{name} must sum to 1 along axis {axis}; sums are {np.round(sums, 6)}")
    return arr


def check_choice(name: str, value, allowed: Sequence) -> object:
    """Check that ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed: {list(allowed)}")
    return value


def _range(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    return f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def cast_like(name: str, value, default):
    """``value`` broadcast to ``default``'s shape and cast to its dtype, as a JAX array.

    Raises ``TypeError`` for a non-numeric value or a non-integer value for an integer field
    (``num_users=2.7``; whole floats such as ``3.0`` are accepted), and ``ValueError`` naming
    the field for NaN/inf, an integer outside the dtype's range, or a shape that does not
    broadcast.
    """
    import jax.numpy as jnp

    arr = np.asarray(value)
    dtype = np.dtype(default.dtype)
    if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "b" and dtype.kind != "b"):
        raise TypeError(f"{name} must be numeric, got {type(value).__name__} of dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        got = f" (got {arr.item()})" if arr.size == 1 else ""
        raise ValueError(f"{name} contains NaN or inf{got}; every entry must be finite")
    if dtype.kind in "iu":
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            got = arr.item() if arr.size == 1 else arr[arr != np.round(arr)].flat[0]
            raise TypeError(f"{name} must hold integers, got {got}")
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ValueError(
                f"{name} has entry {arr.max() if arr.max() > info.max else arr.min()} outside "
                f"the range of {dtype.name}; allowed {_range(int(info.min), int(info.max))}"
            )
    try:
        arr = np.broadcast_to(arr, np.shape(default))
    except ValueError as err:
        raise ValueError(
            f"{name} has shape {arr.shape}; expected one broadcastable to {np.shape(default)}"
        ) from err
    return jnp.asarray(arr, dtype=dtype)

"""Pytree checkpoints: flax msgpack files with metadata, atomic writes and verified reads.

File layout (one msgpack map): ``format`` (a marker string), ``version`` (2), ``metadata`` (a
JSON string), ``checksum`` and ``payload`` (the flax-msgpack bytes of the tree's state dict).
The checksum is the SHA-256 hex digest of the format marker, the version, the length-prefixed
metadata and the payload (see :func:`_digest`), so a flipped byte anywhere that is read back,
the model configuration in the metadata included, is detected, not only truncation.

Version-1 files (whose checksum covered the payload alone) are refused: their metadata cannot
be verified, and the metadata decides how the weights are interpreted.

On load every leaf is checked: floating-point weights must be finite, and with a restore target
the structure, shapes and dtypes must match it. Errors name the file and the leaf path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import jax
import numpy as np
from flax import serialization

_FORMAT = "dtwin_jax-checkpoint"
_VERSION = 2


def _digest(version: int, meta_json: str, payload: bytes) -> str:
    """SHA-256 hex of format marker, version, metadata (length-prefixed) and payload."""
    meta = meta_json.encode("utf-8")
    h = hashlib.sha256()
    h.update(f"{_FORMAT}/{version}\0".encode())
    h.update(len(meta).to_bytes(8, "little"))
    h.update(meta)
    h.update(payload)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> None:
    """Write ``tree`` (any pytree of arrays) and JSON-able ``metadata`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory, which is fsynced and then renamed
    over ``path``, so an interrupted save never leaves a partial file in place of a good one.

    Raises TypeError if ``metadata`` is not JSON-serialisable and ValueError (naming the leaf
    path) if a floating-point leaf holds NaN or inf; nothing is written in either case.
    """
    path = os.fspath(path)
    meta_json = json.dumps({} if metadata is None else metadata, sort_keys=True)
    state = jax.tree_util.tree_map(np.asarray, serialization.to_state_dict(tree))
    _check_finite(state, f"cannot save checkpoint {path!r}")
    payload = serialization.msgpack_serialize(state)
    blob = serialization.msgpack_serialize(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "metadata": meta_json,
            "checksum": _digest(_VERSION, meta_json, payload),
            "payload": payload,
        }
    )
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".msgpack", dir=directory)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are ordinary shared files
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, target: Any = None) -> tuple[Any, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(tree, metadata)``.

    With ``target`` (a pytree of the expected structure, shapes and dtypes) the tree is restored
    into that structure; otherwise it is the raw nested dict of NumPy arrays.

    Raises FileNotFoundError for a missing file; ValueError for a truncated, corrupt or foreign
    file, a version-1 file, a checksum mismatch (payload or metadata), a non-finite
    floating-point weight (naming its leaf path), and a tree whose structure, shapes or dtypes
    differ from ``target`` (naming the first mismatching leaf path and both sides).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path!r}")
    with open(path, "rb") as f:
        blob = f.read()
    try:
        outer = serialization.msgpack_restore(blob)
    except Exception as err:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupt (cannot decode)") from err
    if not isinstance(outer, dict) or outer.get("format") != _FORMAT:
        raise ValueError(f"checkpoint {path!r} is corrupt or not a dtwin_jax checkpoint")
    version = outer.get("version")
    if version == 1:
        raise ValueError(
            f"checkpoint {path!r} has format version 1, whose checksum does not cover the "
            f"metadata, so it cannot be verified; this library reads version {_VERSION} only: "
            "re-save it with save_checkpoint (or retrain) to convert it"
        )
    if version != _VERSION:
        raise ValueError(
            f"checkpoint {path!r} has format version {version!r}; "
            f"this library reads version {_VERSION}"
        )
    payload, meta_json = outer.get("payload"), outer.get("metadata")
    if (
        not isinstance(payload, bytes)
        or not isinstance(meta_json, str)
        or _digest(_VERSION, meta_json, payload) != outer.get("checksum")
    ):
        raise ValueError(
            f"checkpoint {path!r} is corrupt (checksum mismatch over metadata and payload)"
        )
    try:
        state = serialization.msgpack_restore(payload)
        metadata = json.loads(meta_json)
    except Exception as err:
        raise ValueError(f"checkpoint {path!r} is corrupt (cannot decode payload)") from err
    _check_finite(state, f"checkpoint {path!r} is unusable")
    if target is None:
        return state, metadata
    _check_matches(serialization.to_state_dict(target), state, path)
    return serialization.from_state_dict(target, state), metadata


def _check_finite(state: Any, context: str) -> None:
    """Raise ValueError naming the first floating-point leaf of ``state`` with NaN or inf."""
    for key, leaf in _leaves(state):
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(
                f"{context}: leaf '{key}' has {bad} non-finite value(s) (NaN or inf); "
                "weights must be finite"
            )


def _check_matches(expected: Any, found: Any, path: str) -> None:
    """Raise ValueError at the first leaf where ``found`` differs from ``expected``.

    Leaves are compared by path, then shape, then dtype.
    """
    exp = {k: _signature(v) for k, v in _leaves(expected)}
    got = {k: _signature(v) for k, v in _leaves(found)}
    for key in sorted(set(exp) | set(got)):
        exp_sig = exp.get(key, ("missing", None))
        got_sig = got.get(key, ("missing", None))
        if exp_sig[0] != got_sig[0]:
            raise ValueError(
                f"checkpoint {path!r} does not match the target at leaf '{key}': "
                f"target shape {exp_sig[0]}, checkpoint shape {got_sig[0]}"
            )
        if exp_sig[1] != got_sig[1]:
            raise ValueError(
                f"checkpoint {path!r} does not match the target at leaf '{key}': "
                f"target dtype {exp_sig[1]}, checkpoint dtype {got_sig[1]}"
            )


def _signature(leaf: Any) -> tuple[Any, str | None]:
    """``(shape, dtype name)`` of a leaf; an empty container has shape ``"empty"``."""
    if isinstance(leaf, dict):
        return "empty", None
    if not hasattr(leaf, "dtype"):  # Python scalars: as save_checkpoint stores them
        leaf = np.asarray(leaf)
    return tuple(leaf.shape), np.dtype(leaf.dtype).name


def _leaves(tree: Any, prefix: str = ""):
    """Yield ``(path, leaf)`` for every leaf of a nested dict; an empty dict is a leaf too."""
    if isinstance(tree, dict):
        if not tree and prefix:
            yield prefix, tree
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, tree

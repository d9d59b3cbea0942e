"""Pytree checkpoints: flax msgpack files with metadata, atomic writes and clear errors.

File layout (one msgpack map): ``format`` (a marker string), ``version``, ``metadata`` (a JSON
string), ``checksum`` (SHA-256 hex of ``payload``) and ``payload`` (the flax-msgpack bytes of the
tree's state dict). The checksum makes any corruption of the arrays detectable, not only
truncation.
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
_VERSION = 1


def save_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> None:
    """Write ``tree`` (any pytree of arrays) and JSON-able ``metadata`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory, which is fsynced and then renamed
    over ``path``, so an interrupted save never leaves a partial file in place of a good one.
    """
    path = os.fspath(path)
    meta_json = json.dumps({} if metadata is None else metadata, sort_keys=True)
    state = jax.tree_util.tree_map(np.asarray, serialization.to_state_dict(tree))
    payload = serialization.msgpack_serialize(state)
    blob = serialization.msgpack_serialize(
        {
            "format": _FORMAT,
            "version": _VERSION,
            "metadata": meta_json,
            "checksum": hashlib.sha256(payload).hexdigest(),
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

    With ``target`` (a pytree of the expected structure and shapes) the tree is restored into
    that structure; otherwise it is the raw nested dict of NumPy arrays.

    Raises FileNotFoundError for a missing file; ValueError for a truncated, corrupt or foreign
    file, and for a tree whose structure or shapes differ from ``target`` (naming the first
    mismatching leaf path and both shapes).
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
    if outer.get("version") != _VERSION:
        raise ValueError(
            f"checkpoint {path!r} has format version {outer.get('version')!r}; "
            f"this library reads version {_VERSION}"
        )
    payload = outer.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != outer.get(
        "checksum"
    ):
        raise ValueError(f"checkpoint {path!r} is corrupt (checksum mismatch)")
    try:
        state = serialization.msgpack_restore(payload)
        metadata = json.loads(outer["metadata"])
    except Exception as err:
        raise ValueError(f"checkpoint {path!r} is corrupt (cannot decode payload)") from err
    if target is None:
        return state, metadata
    _check_matches(serialization.to_state_dict(target), state, path)
    return serialization.from_state_dict(target, state), metadata


def _check_matches(expected: Any, found: Any, path: str) -> None:
    """Raise ValueError at the first leaf where ``found`` differs from ``expected``."""
    exp = dict(_flatten(expected))
    got = dict(_flatten(found))
    for key in sorted(set(exp) | set(got)):
        exp_shape = exp.get(key, "missing")
        got_shape = got.get(key, "missing")
        if exp_shape != got_shape:
            raise ValueError(
                f"checkpoint {path!r} does not match the target at leaf '{key}': "
                f"target shape {exp_shape}, checkpoint shape {got_shape}"
            )


def _flatten(tree: Any, prefix: str = ""):
    """Yield ``(path, shape)`` for every leaf of a nested dict of arrays."""
    if isinstance(tree, dict):
        if not tree and prefix:
            yield prefix, "empty"
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, tuple(np.shape(tree))

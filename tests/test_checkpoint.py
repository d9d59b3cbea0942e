"""Checkpoint files: round trip, atomic writes, clear errors for missing/corrupt/mismatched,
metadata covered by the checksum, dtype and finiteness checks."""

import hashlib
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization, struct

from dtwin_jax.checkpoint import _digest, load_checkpoint, save_checkpoint


@struct.dataclass
class Pair:
    w: jnp.ndarray
    b: jnp.ndarray


def _tree():
    return {
        "layer": Pair(w=jnp.arange(6.0).reshape(2, 3), b=jnp.array([1, 2], jnp.int32)),
        "scale": jnp.float32(3.5),
        "stack": [jnp.ones((4,)), jnp.zeros((1, 2))],
    }


def test_round_trip_restores_structure_values_dtypes_and_metadata(tmp_path):
    path = tmp_path / "ckpt.msgpack"
    tree = _tree()
    meta = {"command": "python -m x --y 1", "config": {"a": [1, 2], "b": 0.5}}
    save_checkpoint(path, tree, meta)
    restored, got_meta = load_checkpoint(path, target=tree)
    assert got_meta == meta
    assert isinstance(restored["layer"], Pair)
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).dtype == np.asarray(b).dtype
    raw, _ = load_checkpoint(path)  # no target: nested dict of arrays
    np.testing.assert_array_equal(raw["layer"]["w"], np.arange(6.0).reshape(2, 3))
    assert not [p for p in os.listdir(tmp_path) if p != "ckpt.msgpack"]  # no temp files left


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.msgpack"
    with pytest.raises(FileNotFoundError, match="nope.msgpack"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.99])
def test_truncated_file_is_reported(tmp_path, keep):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree())
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(ValueError, match="truncated or corrupt|corrupt"):
        load_checkpoint(path)


def test_flipped_payload_byte_fails_the_checksum(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, {"w": jnp.arange(1000.0)})
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # inside the array data: still decodable msgpack
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(path)


def test_flipped_metadata_byte_fails_the_checksum(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, {"w": jnp.arange(10.0)}, {"config": {"channels": 32}})
    blob = path.read_bytes()
    assert blob.count(b'"channels": 32') == 1
    path.write_bytes(blob.replace(b'"channels": 32', b'"channels": 33'))  # still valid JSON
    with pytest.raises(ValueError, match="checksum mismatch over metadata"):
        load_checkpoint(path)


def _rewrite_outer(path, **fields):
    """Re-encode the outer map of a checkpoint with some fields replaced."""
    outer = serialization.msgpack_restore(path.read_bytes())
    outer.update(fields)
    path.write_bytes(serialization.msgpack_serialize(outer))


def test_version_1_file_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree(), {"v": 1})
    payload = serialization.msgpack_restore(path.read_bytes())["payload"]
    _rewrite_outer(path, version=1, checksum=hashlib.sha256(payload).hexdigest())  # v1 layout
    with pytest.raises(ValueError, match="version 1.*does not cover the metadata"):
        load_checkpoint(path)
    _rewrite_outer(path, version=99)
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(path)


def test_foreign_msgpack_is_rejected(tmp_path):
    path = tmp_path / "c.msgpack"
    path.write_bytes(serialization.msgpack_serialize({"w": np.ones(3)}))
    with pytest.raises(ValueError, match="not a dtwin_jax checkpoint"):
        load_checkpoint(path)


def test_shape_mismatch_names_leaf_and_both_shapes(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree())
    target = _tree()
    target["layer"] = Pair(w=jnp.zeros((2, 4)), b=target["layer"].b)
    with pytest.raises(ValueError, match=r"layer/w.*\(2, 4\).*\(2, 3\)"):
        load_checkpoint(path, target=target)


def test_structure_mismatch_names_missing_leaf(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree())
    target = {**_tree(), "extra": jnp.zeros(3)}
    with pytest.raises(ValueError, match=r"extra.*\(3,\).*missing"):
        load_checkpoint(path, target=target)


def test_dtype_mismatch_names_leaf_and_both_dtypes(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree())
    target = _tree()
    target["layer"] = Pair(w=target["layer"].w, b=np.zeros(2, np.float32))  # saved as int32
    with pytest.raises(ValueError, match=r"layer/b.*target dtype float32.*checkpoint dtype int32"):
        load_checkpoint(path, target=target)
    target = {**_tree(), "scale": np.float16(0)}
    with pytest.raises(ValueError, match=r"'scale'.*float16.*float32"):
        load_checkpoint(path, target=target)


def test_restore_target_may_be_shape_dtype_structs(tmp_path):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree())
    target = jax.eval_shape(_tree)
    restored, _ = load_checkpoint(path, target=target)
    np.testing.assert_array_equal(restored["stack"][0], np.ones(4))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_is_refused_on_save_and_on_load(tmp_path, bad):
    path = tmp_path / "c.msgpack"
    tree = _tree()
    tree["layer"] = Pair(w=tree["layer"].w.at[1, 2].set(bad), b=tree["layer"].b)
    with pytest.raises(ValueError, match=r"cannot save.*leaf 'layer/w' has 1 non-finite"):
        save_checkpoint(path, tree)
    assert not path.exists()
    # A file that holds a non-finite weight (written by other means) is refused on load.
    save_checkpoint(path, _tree(), {"v": 1})
    outer = serialization.msgpack_restore(path.read_bytes())
    state = serialization.msgpack_restore(outer["payload"])
    state["stack"]["1"] = np.full((1, 2), bad, np.float32)
    payload = serialization.msgpack_serialize(state)
    _rewrite_outer(path, payload=payload, checksum=_digest(2, outer["metadata"], payload))
    with pytest.raises(ValueError, match=r"unusable.*leaf 'stack/1' has 2 non-finite"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=r"leaf 'stack/1'"):
        load_checkpoint(path, target=_tree())


def test_shipped_map2traj_checkpoint_is_current_format_and_loads():
    from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT, load_trained

    outer = serialization.msgpack_restore(Path(SHIPPED_CHECKPOINT).read_bytes())
    assert outer["version"] == 2
    config, params, meta = load_trained(SHIPPED_CHECKPOINT)
    assert meta["kind"] == "map2traj" and meta["map_shape"] == [128, 128, 2]
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_failed_save_never_replaces_good_file(tmp_path, monkeypatch):
    path = tmp_path / "c.msgpack"
    save_checkpoint(path, _tree(), {"v": 1})
    good = path.read_bytes()
    with pytest.raises(TypeError):  # metadata not JSON-able: fails before writing
        save_checkpoint(path, _tree(), {"v": object()})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"other": jnp.zeros(5)}, {"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["c.msgpack"]
    assert load_checkpoint(path)[1] == {"v": 1}

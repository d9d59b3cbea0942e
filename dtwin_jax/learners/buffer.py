"""Replay buffers as pure functions on struct states: jittable, vmappable (one buffer per seed).

Two kinds, both rings that overwrite the oldest data once full:

* **flat** (:func:`flat_init`, :func:`flat_add`, :func:`flat_sample`, :func:`flat_can_sample`):
  ``capacity`` items of any pytree ``example``; ``add`` appends a batch of ``n`` items;
  ``sample`` draws ``batch`` items uniformly, with replacement, among the filled slots. Items
  may carry a time axis: a flat buffer of padded whole episodes (``[L_max, ...]`` plus a
  validity mask) is the episode buffer of recurrent VDN/IQL.
* **sequence** (:func:`seq_init`, :func:`seq_add`, :func:`seq_sample`, :func:`seq_can_sample`):
  ``num_rows`` parallel streams (one per twin) of ``capacity`` time steps; ``add`` appends
  ``t`` steps to every row; ``sample`` draws ``batch`` windows of ``length`` consecutive steps
  (uniform row, uniform start among windows that lie in the filled part and do not cross the
  write position). Episode boundaries inside a window are the learner's business (reset the
  recurrent state where the stored ``first`` flag is set).

Sizes are static (taken from array shapes); positions and fill levels are int32 scalars.
Sampling indices are exposed (``*_sample_indices``) so that tests can replay them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax._checks import check_int


@struct.dataclass
class FlatBufferState:
    """``data``: the pytree of items, each leaf ``[capacity, ...]``; ``pos``: next slot to
    write (int32); ``size``: filled slots (int32, at most ``capacity``)."""

    data: Any
    pos: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        """Number of slots: the leading axis of every ``data`` leaf."""
        return jax.tree.leaves(self.data)[0].shape[0]


def _leading(tree) -> int:
    return jax.tree.leaves(tree)[0].shape[0]


def flat_init(example: Any, capacity: int) -> FlatBufferState:
    """An empty buffer for ``capacity`` items shaped like ``example`` (one item, no batch axis)."""
    capacity = check_int("capacity", capacity, lo=1)
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype),
                        example)
    return FlatBufferState(data, jnp.int32(0), jnp.int32(0))


def flat_add(state: FlatBufferState, items: Any) -> FlatBufferState:
    """Append ``items`` (leaves ``[n, ...]``, ``n <= capacity``) at the write position."""
    cap, n = state.capacity, _leading(items)
    if n > cap:
        raise ValueError(f"cannot add {n} items to a buffer of capacity {cap}")
    idx = (state.pos + jnp.arange(n)) % cap
    data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype)), state.data, items)
    return FlatBufferState(data, (state.pos + n) % cap, jnp.minimum(state.size + n, cap))


def flat_can_sample(state: FlatBufferState, batch: int = 1) -> jax.Array:
    """Whether at least ``batch`` items are stored (a bool scalar)."""
    return state.size >= batch


def flat_sample_indices(state: FlatBufferState, key: jax.Array, batch: int) -> jax.Array:
    """``[batch]`` int32 slots drawn uniformly among the filled ones (slot 0 if empty)."""
    u = jax.random.uniform(key, (batch,))
    return jnp.minimum((u * state.size).astype(jnp.int32), jnp.maximum(state.size - 1, 0))


def flat_sample(state: FlatBufferState, key: jax.Array, batch: int) -> Any:
    """``batch`` items (leaves ``[batch, ...]``) drawn uniformly with replacement."""
    idx = flat_sample_indices(state, key, batch)
    return jax.tree.map(lambda d: d[idx], state.data)


@struct.dataclass
class SeqBufferState:
    """``data``: leaves ``[num_rows, capacity, ...]`` (time on axis 1); ``pos``: next time slot
    to write; ``size``: filled time slots (all rows advance together)."""

    data: Any
    pos: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        """Time slots per row: axis 1 of every ``data`` leaf ``[num_rows, capacity, ...]``."""
        return jax.tree.leaves(self.data)[0].shape[1]


def seq_init(example: Any, num_rows: int, capacity: int) -> SeqBufferState:
    """An empty buffer of ``num_rows`` streams of ``capacity`` steps shaped like ``example``
    (one step of one row)."""
    num_rows = check_int("num_rows", num_rows, lo=1)
    capacity = check_int("capacity", capacity, lo=1)
    data = jax.tree.map(
        lambda x: jnp.zeros((num_rows, capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example
    )
    return SeqBufferState(data, jnp.int32(0), jnp.int32(0))


def seq_add(state: SeqBufferState, items: Any) -> SeqBufferState:
    """Append ``t`` steps to every row: leaves ``[num_rows, t, ...]`` with ``t <= capacity``."""
    cap = state.capacity
    t = jax.tree.leaves(items)[0].shape[1]
    if t > cap:
        raise ValueError(f"cannot add {t} steps to a buffer of capacity {cap}")
    idx = (state.pos + jnp.arange(t)) % cap
    data = jax.tree.map(lambda d, x: d.at[:, idx].set(x.astype(d.dtype)), state.data, items)
    return SeqBufferState(data, (state.pos + t) % cap, jnp.minimum(state.size + t, cap))


def seq_can_sample(state: SeqBufferState, length: int) -> jax.Array:
    """Whether windows of ``length`` steps exist (a bool scalar)."""
    return state.size >= length


def seq_sample_indices(state: SeqBufferState, key: jax.Array, batch: int, length: int
                       ) -> tuple[jax.Array, jax.Array]:
    """``(rows [batch], times [batch, length])`` int32: uniform rows and uniform window starts.

    Valid starts are the ``size - length + 1`` oldest-first offsets of the filled part (the
    oldest step is ``pos - size`` modulo capacity), so no window crosses the write position.
    """
    check_int("length", length, lo=1, hi=state.capacity)
    num_rows = jax.tree.leaves(state.data)[0].shape[0]
    k_row, k_start = jax.random.split(key)
    rows = jax.random.randint(k_row, (batch,), 0, num_rows, dtype=jnp.int32)
    starts = jnp.maximum(state.size - length + 1, 1)
    offset = jnp.minimum((jax.random.uniform(k_start, (batch,)) * starts).astype(jnp.int32),
                         starts - 1)
    oldest = (state.pos - state.size) % state.capacity
    times = (oldest + offset[:, None] + jnp.arange(length)) % state.capacity
    return rows, times.astype(jnp.int32)


def seq_sample(state: SeqBufferState, key: jax.Array, batch: int, length: int) -> Any:
    """``batch`` windows of ``length`` consecutive steps: leaves ``[batch, length, ...]``."""
    rows, times = seq_sample_indices(state, key, batch, length)
    return jax.tree.map(lambda d: d[rows[:, None], times], state.data)

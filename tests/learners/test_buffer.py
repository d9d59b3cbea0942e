"""Replay buffers against a plain-Python ring of the same adds, replaying the same indices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.learners import buffer as rb


def _item(i):
    return {"obs": np.full((2,), i, np.float32), "action": np.int32(i), "done": i % 3 == 0}


def test_flat_buffer_matches_python_ring_and_samples_filled_slots_only():
    cap = 5
    state = rb.flat_init(_item(0), cap)
    add = jax.jit(rb.flat_add)
    ref, pos = [None] * cap, 0
    counter = 0
    for n in (2, 1, 3, 4):  # wraps around twice
        items = [_item(counter + j) for j in range(n)]
        counter += n
        state = add(state, jax.tree.map(lambda *xs: np.stack(xs), *items))
        for it in items:
            ref[pos] = it
            pos = (pos + 1) % cap
        filled = [r for r in ref if r is not None]
        assert int(state.size) == len(filled) and int(state.pos) == pos
        key = jax.random.PRNGKey(counter)
        idx = np.asarray(rb.flat_sample_indices(state, key, 64))
        assert ((idx >= 0) & (idx < len(filled))).all()
        got = jax.jit(rb.flat_sample, static_argnums=2)(state, key, 64)
        np.testing.assert_array_equal(got["action"], [ref[i]["action"] for i in idx])
        np.testing.assert_array_equal(got["obs"], np.stack([ref[i]["obs"] for i in idx]))
        np.testing.assert_array_equal(got["done"], [ref[i]["done"] for i in idx])
    assert bool(rb.flat_can_sample(state, 5)) and not bool(rb.flat_can_sample(state, 6))
    counts = np.bincount(np.asarray(rb.flat_sample_indices(state, jax.random.PRNGKey(0), 5000)),
                         minlength=cap) / 5000
    np.testing.assert_allclose(counts, 0.2, atol=0.03)  # uniform over the filled slots
    with pytest.raises(ValueError, match="capacity"):
        rb.flat_add(state, jax.tree.map(lambda *xs: np.stack(xs), *[_item(0)] * 6))
    with pytest.raises(ValueError, match="capacity"):
        rb.flat_init(_item(0), 0)


def test_flat_buffer_vmaps_over_seeds():
    def run(key):
        state = rb.flat_init(_item(0), 4)
        state = rb.flat_add(state, {"obs": jax.random.normal(key, (3, 2)),
                                    "action": jnp.arange(3, dtype=jnp.int32),
                                    "done": jnp.zeros(3, bool)})
        return rb.flat_sample(state, key, 8)

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    batched = jax.jit(jax.vmap(run))(keys)
    for s in range(3):
        single = run(keys[s])
        np.testing.assert_array_equal(batched["obs"][s], single["obs"])


def test_sequence_buffer_windows_match_python_streams_and_never_cross_the_write_head():
    rows, cap, length = 3, 7, 3
    state = rb.seq_init({"x": np.float32(0), "t": np.int32(0)}, rows, cap)
    ref = [[] for _ in range(rows)]  # full history per row; the ring keeps the last `cap`
    t = 0
    for n in (2, 4, 3, 5):
        steps = np.arange(t, t + n)
        t += n
        x = (100 * np.arange(rows)[:, None] + steps[None]).astype(np.float32)
        state = jax.jit(rb.seq_add)(state, {"x": x, "t": np.broadcast_to(steps, (rows, n))})
        for r in range(rows):
            ref[r].extend(x[r].tolist())
        window = [h[-cap:] for h in ref]
        if len(window[0]) < length:
            assert not bool(rb.seq_can_sample(state, length))
            continue
        key = jax.random.PRNGKey(t)
        r_idx, times = (np.asarray(a) for a in rb.seq_sample_indices(state, key, 50, length))
        got = rb.seq_sample(state, key, 50, length)
        assert got["x"].shape == (50, length)
        for b in range(50):
            stream = got["x"][b]
            # consecutive steps of one row, all inside the retained window
            np.testing.assert_array_equal(np.diff(np.asarray(got["t"][b])), 1)
            start = window[r_idx[b]].index(float(stream[0]))
            np.testing.assert_array_equal(stream, window[r_idx[b]][start:start + length])
            np.testing.assert_array_equal(stream, state.data["x"][r_idx[b], times[b]])
    assert int(state.size) == cap and bool(rb.seq_can_sample(state, cap))
    with pytest.raises(ValueError, match="length"):
        rb.seq_sample_indices(state, jax.random.PRNGKey(0), 4, cap + 1)

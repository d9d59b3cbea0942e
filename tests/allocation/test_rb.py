"""Iterative per-BS RB allocation against a NumPy/SciPy reference; invariants; vmap."""

import jax
import numpy as np
import pytest
import scipy.optimize

from dtwin_jax.allocation.rb import iterative_rb_allocation

P, N0, BW = 1.0, 1e-5, 1.0
_alloc = jax.jit(iterative_rb_allocation)


def _instance(seed, u=8, m=3, r=6):
    rng = np.random.default_rng(seed)
    d = rng.uniform(5.0, 120.0, (u, m))
    gain = rng.exponential(size=(u, m, r)) * d[:, :, None] ** -2.0
    serve = rng.random((m, u)) < 0.6
    return gain.astype(np.float32), serve


def _reference(gain, serve, reserved):
    """The scheme in NumPy: BS by BS, scipy max-rate matching on the allowed pairs."""
    u, m, r = gain.shape
    alloc = np.zeros((u, m, r))
    interf = np.zeros((u, r))
    for b in range(m):
        rate = BW * np.log2(1.0 + P * gain[:, b] / (interf + N0))
        allowed = serve[b][:, None] & ~reserved[b][None, :]
        rows, cols = scipy.optimize.linear_sum_assignment(np.where(allowed, rate, -1e9), True)
        ok = allowed[rows, cols]
        alloc[rows[ok], b, cols[ok]] = 1.0
        interf = interf + P * gain[:, b] * alloc[:, b].max(axis=0)[None, :]
    tx = alloc.max(axis=0)  # [M, R]
    rx = P * gain
    others = np.array([[sum(rx[:, o, k] * tx[o, k] for o in range(m) if o != b)
                        for k in range(r)] for b in range(m)])  # [M, R, U]
    sinr = alloc * rx / (np.moveaxis(others, 2, 0) + N0)
    return alloc, (alloc * BW * np.log2(1.0 + sinr)).sum(axis=(1, 2))


def _check_invariants(alloc, serve, reserved):
    assert set(np.unique(alloc)) <= {0.0, 1.0}
    assert np.all(alloc.sum(axis=0) <= 1), "an RB of a BS went to two users"
    assert np.all(alloc.sum(axis=2) <= 1), "a user got two RBs of one BS"
    assert np.all(alloc.max(axis=2) <= serve.T), "an RB went to a user the BS did not choose"
    assert np.all(alloc.max(axis=0)[reserved] == 0), "a reserved RB carries a user"


@pytest.mark.parametrize("seed", range(4))
def test_matches_numpy_reference(seed):
    gain, serve = _instance(seed, u=8 + seed, r=6)
    res = _alloc(gain, serve, P, N0, BW)
    no_reserve = np.zeros((3, 6), bool)
    ref_alloc, ref_rate = _reference(gain.astype(np.float64), serve, no_reserve)
    np.testing.assert_array_equal(np.asarray(res.alloc), ref_alloc)
    np.testing.assert_allclose(np.asarray(res.rate), ref_rate, rtol=1e-4, atol=1e-6)
    _check_invariants(np.asarray(res.alloc), serve, no_reserve)
    # every BS serves min(#chosen users, #RBs) users
    np.testing.assert_array_equal(np.asarray(res.alloc).sum(axis=(0, 2)),
                                  np.minimum(serve.sum(axis=1), 6))


def test_reserved_rb_is_best_uplink_and_empty():
    gain, serve = _instance(7, u=10, r=5)
    serve[:] = True  # more users than RBs: every free RB is used
    rng = np.random.default_rng(0)
    up = rng.exponential(size=(3, 5)).astype(np.float32)
    reserve = np.array([True, False, True])
    res = _alloc(gain, serve, P, N0, BW, reserve, up)
    reserved = np.asarray(res.reserved)
    expect = np.zeros((3, 5), bool)
    expect[0, up[0].argmax()] = expect[2, up[2].argmax()] = True
    np.testing.assert_array_equal(reserved, expect)
    _check_invariants(np.asarray(res.alloc), serve, reserved)
    assert np.asarray(res.alloc).sum() == 4 + 5 + 4
    np.testing.assert_allclose(
        np.asarray(res.update_rate), np.where(reserve, BW * np.log2(1 + P * up.max(1) / N0), 0),
        rtol=1e-5)
    ref_alloc, ref_rate = _reference(gain.astype(np.float64), serve, reserved)
    np.testing.assert_array_equal(np.asarray(res.alloc), ref_alloc)


def test_vmap_over_twins_matches_single_calls():
    insts = [_instance(s) for s in range(5)]
    gains = np.stack([g for g, _ in insts])
    serves = np.stack([s for _, s in insts])
    batched = jax.jit(jax.vmap(lambda g, s: iterative_rb_allocation(g, s, P, N0, BW)))(gains,
                                                                                        serves)
    for i, (g, s) in enumerate(insts):
        single = _alloc(g, s, P, N0, BW)
        np.testing.assert_array_equal(np.asarray(batched.alloc[i]), np.asarray(single.alloc))
        np.testing.assert_allclose(np.asarray(batched.rate[i]), np.asarray(single.rate),
                                   rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(batched.sinr)))


def test_no_chosen_users_gives_empty_allocation_and_zero_rate():
    gain, _ = _instance(3)
    res = _alloc(gain, np.zeros((3, 8), bool), P, N0, BW)
    assert float(np.asarray(res.alloc).sum()) == 0.0
    assert np.all(np.asarray(res.rate) == 0.0)


def test_shape_errors():
    gain, serve = _instance(0)
    with pytest.raises(ValueError, match="serve"):
        iterative_rb_allocation(gain, serve.T)
    with pytest.raises(ValueError, match="gain"):
        iterative_rb_allocation(gain[0], serve)
    with pytest.raises(ValueError, match="uplink_gain"):
        iterative_rb_allocation(gain, serve, reserve_update=np.ones(3, bool))

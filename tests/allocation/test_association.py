"""Association rules against NumPy, masks, and the Ye et al. dual method vs brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.allocation.association import (
    load_balancing_dual,
    max_rsrp,
    max_sinr,
    random_association,
    sum_log_utility,
)

_dual = jax.jit(load_balancing_dual, static_argnames="num_iters")


def _np_utility(c, assoc):
    """sum_u log(c[u, a_u] / n_{a_u}) for assoc [N, U] (all users active)."""
    n = np.stack([(assoc == b).sum(axis=1) for b in range(c.shape[1])], axis=1)  # [N, B]
    load = np.take_along_axis(n, assoc, axis=1)
    return np.sum(np.log(c[np.arange(c.shape[0])[None, :], assoc]) - np.log(load), axis=1)


def test_max_sinr_and_rsrp_match_numpy_with_masks():
    rng = np.random.default_rng(0)
    sinr = rng.normal(0, 10, (20, 5)).astype(np.float32)
    user_mask = rng.random(20) < 0.8
    bs_mask = np.array([True, False, True, True, False])
    got = np.asarray(max_sinr(sinr, user_mask, bs_mask))
    ref = np.where(user_mask, np.argmax(np.where(bs_mask, sinr, -np.inf), axis=1), -1)
    np.testing.assert_array_equal(got, ref)
    bias = np.array([0.0, 8.0, 8.0, 3.0, 0.0], np.float32)
    got = np.asarray(max_rsrp(sinr - 80.0, bias, user_mask, bs_mask))
    ref = np.where(user_mask, np.argmax(np.where(bs_mask, sinr + bias, -np.inf), axis=1), -1)
    np.testing.assert_array_equal(got, ref)


def test_range_expansion_moves_users_to_biased_cell():
    rsrp = np.array([[-80.0, -85.0], [-80.0, -79.0], [-80.0, -95.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(max_rsrp(rsrp)), [0, 1, 0])
    np.testing.assert_array_equal(np.asarray(max_rsrp(rsrp, np.array([0.0, 6.0]))), [1, 1, 0])


def test_no_allowed_bs_gives_minus_one():
    cand = np.array([[True, False], [False, False]])
    assert list(np.asarray(max_sinr(np.zeros((2, 2)), candidates=cand))) == [0, -1]
    assert list(np.asarray(random_association(jax.random.key(0), cand))) == [0, -1]


def test_random_association_uniform_over_candidates_and_deterministic():
    cand = np.zeros((3000, 4), bool)
    cand[:, [0, 2, 3]] = True
    keys = jax.random.split(jax.random.key(1), 2)
    a = np.asarray(random_association(keys[0], cand))
    np.testing.assert_array_equal(a, np.asarray(random_association(keys[0], cand)))
    assert not np.array_equal(a, np.asarray(random_association(keys[1], cand)))
    counts = np.bincount(a, minlength=4)
    assert counts[1] == 0
    np.testing.assert_allclose(counts[[0, 2, 3]] / 3000, 1 / 3, atol=0.04)


def test_sum_log_utility_matches_numpy():
    rng = np.random.default_rng(2)
    c = rng.lognormal(0, 1, (7, 3))
    assoc = rng.integers(0, 3, (5, 7))
    ours = [float(sum_log_utility(c, jnp.asarray(a))) for a in assoc]
    np.testing.assert_allclose(ours, _np_utility(c, assoc), rtol=1e-5)


@pytest.mark.parametrize("num_u,num_b", [(6, 3), (5, 2), (4, 3)])
def test_dual_beats_max_rate_and_is_close_to_brute_force(num_u, num_b):
    rng = np.random.default_rng(num_u * 10 + num_b)
    every = np.array(list(itertools.product(range(num_b), repeat=num_u)))
    gaps, gains = [], []
    for _ in range(15):
        # one BS much stronger than the rest: max-rate overloads it
        c = rng.lognormal(0.0, 1.0, (num_u, num_b)) * np.r_[4.0, np.ones(num_b - 1)]
        assoc = np.asarray(_dual(c.astype(np.float32)))
        assert np.all((assoc >= 0) & (assoc < num_b))
        ours = _np_utility(c, assoc[None])[0]
        gains.append(ours - _np_utility(c, c.argmax(axis=1)[None])[0])
        gaps.append(_np_utility(c, every).max() - ours)
    assert min(gains) >= -1e-5, "worse than the max-rate association"
    assert max(gains) > 0.1, "never improved on max-rate (test instances too easy?)"
    assert max(gaps) <= 0.1 and np.mean(gaps) <= 0.02, f"far from brute force: {gaps}"


def test_dual_respects_masks_and_vmaps():
    rng = np.random.default_rng(3)
    c = rng.lognormal(0, 1, (4, 10, 3)).astype(np.float32)
    user_mask = rng.random((4, 10)) < 0.7
    bs_mask = np.array([[True, True, False]] * 4)
    out = np.asarray(jax.vmap(lambda r, u, b: load_balancing_dual(r, u, b, num_iters=30))(
        c, user_mask, bs_mask))
    assert np.all(out[~user_mask] == -1)
    assert np.all(np.isin(out[user_mask], [0, 1]))
    single = np.asarray(_dual(c[1], user_mask[1], bs_mask[1], num_iters=30))
    np.testing.assert_array_equal(out[1], single)


def test_validation_errors():
    with pytest.raises(ValueError, match="num_iters"):
        load_balancing_dual(np.ones((3, 2)), num_iters=0)
    with pytest.raises(ValueError, match="step"):
        load_balancing_dual(np.ones((3, 2)), step=0.0)
    with pytest.raises(ValueError, match="user_mask"):
        max_sinr(np.ones((3, 2)), user_mask=np.ones(2, bool))
    with pytest.raises(ValueError, match="sinr_db"):
        max_sinr(np.ones(3))

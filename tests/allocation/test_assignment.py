"""linear_sum_assignment against scipy: optimal cost, validity, masks, batching, errors."""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_jax.allocation.assignment import (
    batched_linear_sum_assignment,
    linear_sum_assignment,
)

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
_lsa = jax.jit(linear_sum_assignment, static_argnames="maximize")


def _check_valid(rows, cols, n, m):
    rows, cols = np.asarray(rows), np.asarray(cols)
    k = min(n, m)
    assert rows.shape == cols.shape == (k,)
    assert np.all(np.diff(rows) > 0), "row_ind must be strictly increasing"
    assert np.all((rows >= 0) & (rows < n))
    valid = cols[cols >= 0]
    assert np.all(valid < m)
    assert len(np.unique(valid)) == len(valid), "a column was assigned twice"


def _scipy_cost(cost, maximize=False):
    r, c = scipy.optimize.linear_sum_assignment(cost, maximize=maximize)
    return cost[r, c].sum()


shapes = st.sampled_from([(1, 1), (1, 4), (4, 1), (3, 3), (4, 6), (6, 4), (7, 7)])


@st.composite
def cost_matrices(draw):
    n, m = draw(shapes)
    if draw(st.booleans()):  # small integers: many ties
        hi = draw(st.integers(0, 4))
        elems = st.integers(-hi, hi).map(float)
    else:
        elems = st.floats(-100, 100, allow_nan=False, width=32)
    return draw(hnp.arrays(np.float32, (n, m), elements=elems))


@SETTINGS
@given(cost=cost_matrices(), maximize=st.booleans())
def test_optimal_cost_matches_scipy(cost, maximize):
    rows, cols = _lsa(cost, maximize=maximize)
    _check_valid(rows, cols, *cost.shape)
    cost64 = cost.astype(np.float64)
    ours = cost64[np.asarray(rows), np.asarray(cols)].sum()
    ref = _scipy_cost(cost64, maximize)
    assert ours == pytest.approx(ref, abs=1e-3 * (1 + np.abs(cost64).max()))


@SETTINGS
@given(cost=cost_matrices(), data=st.data())
def test_mask_matches_scipy_big_m(cost, data):
    n, m = cost.shape
    mask = data.draw(hnp.arrays(bool, (n, m)))
    rows, cols = _lsa(cost, mask=mask)
    rows, cols = np.asarray(rows), np.asarray(cols)
    _check_valid(rows, cols, n, m)
    ok = cols >= 0
    assert np.all(mask[rows[ok], cols[ok]]), "a forbidden pair was assigned"
    # reference: scipy on a big-M matrix maximises the number of allowed pairs first
    c64 = cost.astype(np.float64)
    big = 1e6
    r_ref, c_ref = scipy.optimize.linear_sum_assignment(np.where(mask, c64, big))
    n_ref = mask[r_ref, c_ref].sum()
    assert ok.sum() == n_ref
    ours = c64[rows[ok], cols[ok]].sum()
    ref = np.where(mask, c64, 0.0)[r_ref, c_ref].sum()
    assert ours == pytest.approx(ref, abs=1e-3 * (1 + np.abs(c64).max()))


@pytest.mark.parametrize("shape", [(12, 12), (5, 9), (9, 5)])
def test_batched_and_vmap_agree_with_scipy(shape):
    rng = np.random.default_rng(0)
    # 100 problems: more than one chunk of the solver, and a padded last chunk
    cost = rng.integers(0, 6, (100, *shape)).astype(np.float32)
    cost[:50] = rng.random((50, *shape))
    rows_b, cols_b = jax.jit(batched_linear_sum_assignment)(cost.reshape(10, 10, *shape))
    rows_v, cols_v = jax.jit(jax.vmap(linear_sum_assignment))(cost)
    rows_b, cols_b = np.asarray(rows_b).reshape(100, -1), np.asarray(cols_b).reshape(100, -1)
    for b in range(100):
        ref = _scipy_cost(cost[b].astype(np.float64))
        for rows, cols in ((rows_b[b], cols_b[b]), (np.asarray(rows_v[b]), np.asarray(cols_v[b]))):
            _check_valid(rows, cols, *shape)
            assert cost[b][rows, cols].astype(np.float64).sum() == pytest.approx(ref, abs=1e-4)


def test_float64_input_under_x64():
    rng = np.random.default_rng(1)
    cost = rng.random((20, 20)) * 1e-9 + np.arange(20)[None, :]  # tiny differences
    with jax.enable_x64(True):
        rows, cols = linear_sum_assignment(jnp.asarray(cost, jnp.float64))
        assert cols.dtype == jnp.int32
    ours = cost[np.asarray(rows), np.asarray(cols)].sum()
    assert ours == pytest.approx(_scipy_cost(cost), abs=1e-14)


def test_all_forbidden_row_gets_minus_one():
    cost = np.arange(9, dtype=np.float32).reshape(3, 3)
    mask = np.ones((3, 3), bool)
    mask[1] = False
    rows, cols = linear_sum_assignment(cost, mask=mask)
    assert list(np.asarray(rows)) == [0, 1, 2]
    assert int(cols[1]) == -1
    assert set(np.asarray(cols)[[0, 2]]) <= {0, 1, 2}


def test_non_finite_entries_are_forbidden():
    cost = np.array([[np.inf, 1.0], [2.0, np.nan]], np.float32)
    rows, cols = linear_sum_assignment(cost)
    assert list(np.asarray(cols)) == [1, 0]


def test_empty_and_shape_errors():
    rows, cols = linear_sum_assignment(np.zeros((0, 3)))
    assert rows.shape == cols.shape == (0,)
    with pytest.raises(ValueError, match="cost"):
        linear_sum_assignment(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="cost"):
        batched_linear_sum_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        linear_sum_assignment(np.zeros((2, 3)), mask=np.ones((3, 2), bool))
    with pytest.raises(TypeError, match="maximize"):
        batched_linear_sum_assignment(np.zeros((2, 2)), maximize=1)


def test_differentiable_through_costs_with_fixed_assignment():
    base = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]], np.float32)

    def total(scale):
        cost = jnp.asarray(base) * scale
        rows, cols = linear_sum_assignment(cost)
        return cost[rows, cols].sum()

    r, c = scipy.optimize.linear_sum_assignment(base)
    assert float(jax.grad(total)(2.0)) == pytest.approx(base[r, c].sum())
    np.testing.assert_allclose(jax.vmap(jax.grad(total))(jnp.ones(3)), base[r, c].sum())

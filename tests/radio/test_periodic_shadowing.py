"""Periodic shadowing tiles: correlation against the closed form and the exact field, lookup."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.radio import fading
from dtwin_jax.radio import periodic_shadowing as ps

T = 32
sample_tile = jax.jit(ps.sample_shadowing_tile, static_argnums=(1, 2))
lookup = jax.jit(ps.tile_shadowing_at)


def _tiles(num_keys: int, num_bs: int, cell: float, sigma, d_corr) -> np.ndarray:
    """``[K * B, T, T]`` samples (the wrapped row/column dropped)."""
    keys = jax.random.split(jax.random.key(0), num_keys)
    v = jax.vmap(lambda k: sample_tile(k, num_bs, T, cell, sigma, d_corr).values)(keys)
    v = np.asarray(v)[:, :T, :T, :]  # [K, T, T, B]
    return np.moveaxis(v, -1, 1).reshape(-1, T, T)


def _periodic_corr(v: np.ndarray, lag_y: int, lag_x: int) -> float:
    rolled = np.roll(np.roll(v, -lag_y, axis=-2), -lag_x, axis=-1)
    return float(np.mean(v * rolled) / np.mean(v * v))


def test_marginal_std_and_periodic_correlation_match_closed_form():
    v = _tiles(64, 8, 10.0, 6.0, 30.0)  # 512 maps of 32 x 32
    assert v.std() == pytest.approx(6.0, rel=0.03)
    for lag in (1, 2, 4, 8, 16, 24, 31):
        want = ps.periodic_correlation(lag, 10.0, 30.0, T)
        assert _periodic_corr(v, 0, lag) == pytest.approx(want, abs=0.02), lag
        assert _periodic_corr(v, lag, 0) == pytest.approx(want, abs=0.02), lag
    # separable: the diagonal lag is the product of the axis correlations
    want = ps.periodic_correlation(3, 10.0, 30.0, T) ** 2
    assert _periodic_corr(v, 3, 3) == pytest.approx(want, abs=0.02)


def test_short_lags_match_the_exact_non_periodic_field():
    """Against sample_shadowing_field (the exact separable exponential field on a grid)."""
    v = _tiles(32, 8, 10.0, 6.0, 50.0)
    keys = jax.random.split(jax.random.key(1), 32)
    exact = jax.vmap(lambda k: fading.sample_shadowing_field(
        k, 8, (T, T), jnp.zeros(2), 10.0, 6.0, 50.0).values)(keys)
    exact = np.moveaxis(np.asarray(exact), -1, 1).reshape(-1, T, T)
    for lag in (1, 2, 4, 8):
        a, b = exact[..., :, : T - lag], exact[..., :, lag:]
        exact_corr = float(np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b)))
        assert _periodic_corr(v, 0, lag) == pytest.approx(exact_corr, abs=0.03), lag
        # and both equal the model exp(-lag cell / d_corr) up to the period's images
        assert exact_corr == pytest.approx(np.exp(-lag * 10.0 / 50.0), abs=0.03)
    # the closed form differs from the non-periodic model by < rho^(T - 2k)
    k = np.arange(9)
    gap = np.abs(ps.periodic_correlation(k, 10.0, 50.0, T) - np.exp(-k * 0.2))
    assert np.all(gap <= np.exp(-0.2 * (T - 2 * k)) + 1e-12)


def test_per_bs_parameters_and_independence():
    keys = jax.random.split(jax.random.key(2), 64)
    sig = jnp.array([2.0, 8.0])
    dc = jnp.array([5.0, 80.0])
    v = np.asarray(jax.vmap(lambda k: sample_tile(k, 2, T, 10.0, sig, dc).values)(keys))
    v = v[:, :T, :T, :]
    np.testing.assert_allclose(v.std(axis=(0, 1, 2)), [2.0, 8.0], rtol=0.05)
    c0 = _periodic_corr(np.moveaxis(v[..., 0], 0, 0), 0, 1)
    c1 = _periodic_corr(np.moveaxis(v[..., 1], 0, 0), 0, 1)
    assert c0 == pytest.approx(ps.periodic_correlation(1, 10.0, 5.0, T), abs=0.03)
    assert c1 == pytest.approx(ps.periodic_correlation(1, 10.0, 80.0, T), abs=0.03)
    cross = np.mean(v[..., 0] * v[..., 1]) / (v[..., 0].std() * v[..., 1].std())
    assert abs(cross) < 0.05


def test_lookup_is_bilinear_wrapped_and_periodic():
    tile = sample_tile(jax.random.key(3), 3, T, 5.0, 6.0, 20.0)
    vals = np.asarray(tile.values)
    np.testing.assert_array_equal(vals[T], vals[0])
    np.testing.assert_array_equal(vals[:, T], vals[:, 0])
    # grid point (x = 4 cells, y = 7 cells)
    np.testing.assert_allclose(lookup(tile, jnp.array([20.0, 35.0])), vals[7, 4], atol=1e-5)
    # cell centre: mean of the 4 corners
    np.testing.assert_allclose(lookup(tile, jnp.array([22.5, 37.5])),
                               vals[7:9, 4:6].mean(axis=(0, 1)), atol=1e-5)
    # periodic in both axes, negative positions included
    p = jnp.array([[13.3, 71.9], [-40.0, 3.0]])
    period = T * 5.0
    for shift in ([period, 0.0], [0.0, -period], [3 * period, 2 * period]):
        np.testing.assert_allclose(lookup(tile, p + jnp.array(shift)), lookup(tile, p),
                                   atol=2e-4)
    # continuous along a path that crosses the wrap
    path = jnp.stack([jnp.linspace(-50.0, 250.0, 3000), jnp.linspace(0.0, 30.0, 3000)], -1)
    s = np.asarray(lookup(tile, path))
    assert s.shape == (3000, 3) and np.max(np.abs(np.diff(s, axis=0))) < 0.5


def test_reposition_applies_offset_and_symmetry():
    tile = sample_tile(jax.random.key(4), 2, T, 10.0, 6.0, 30.0)
    p = jnp.array([[37.0, 121.0], [250.0, 5.0]])
    moved = tile.replace(offset=jnp.array([30.0, 50.0]), swap=jnp.bool_(True),
                         flip=jnp.array([False, True]))
    # swap then flip y then shift: (x, y) -> (y, -x) + offset
    q = jnp.stack([p[:, 1], -p[:, 0]], -1) + jnp.array([30.0, 50.0])
    np.testing.assert_allclose(lookup(moved, p), lookup(tile, q), atol=2e-4)
    # random placements: offsets uniform over the period, all 8 symmetries occur
    keys = jax.random.split(jax.random.key(5), 4000)
    placed = jax.vmap(ps.reposition_tile, in_axes=(0, None))(keys, tile)
    off = np.asarray(placed.offset)
    assert off.min() >= 0 and off.max() <= T * 10.0
    assert abs(off.mean() / (T * 10.0) - 0.5) < 0.02
    codes = np.asarray(placed.swap) * 4 + np.asarray(placed.flip) @ np.array([2, 1])
    assert np.all(np.bincount(codes, minlength=8) > 400)
    np.testing.assert_array_equal(placed.values[0], tile.values)  # values never move


def test_float64_mode_and_sizes():
    with jax.enable_x64(True):
        tile = ps.sample_shadowing_tile(jax.random.key(6), 2, 8, 10.0, 6.0, 30.0)
        out = ps.tile_shadowing_at(tile, jnp.zeros((5, 2), jnp.float64))
        assert out.shape == (5, 2) and bool(jnp.all(jnp.isfinite(out)))
    assert ps.tile_bytes(64, 22) == 4 * 65 * 65 * 22 < 500_000
    with pytest.raises(ValueError, match="tile_cells"):
        ps.sample_shadowing_tile(jax.random.key(0), 2, 1, 10.0, 6.0, 30.0)
    with pytest.raises(TypeError, match="num_bs"):
        ps.sample_shadowing_tile(jax.random.key(0), 2.0, 8, 10.0, 6.0, 30.0)

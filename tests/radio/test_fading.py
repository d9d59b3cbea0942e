"""Fading and shadowing: moments, distributions, spatial correlation, lookup, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dtwin_jax import radio

N = 200_000
# jitted entry points: one compilation per shape instead of many eager op dispatches
rayleigh = jax.jit(radio.rayleigh_gain, static_argnums=1)
rician = jax.jit(radio.rician_gain, static_argnums=2)
lognormal = jax.jit(radio.lognormal_shadowing_db, static_argnums=2)
sample_field = jax.jit(radio.sample_shadowing_field, static_argnums=(1, 2))
lookup = jax.jit(radio.shadowing_at)


def test_rayleigh_is_exp1():
    g = np.asarray(rayleigh(jax.random.key(1), (N,)))
    assert g.dtype == np.float32 and g.min() >= 0
    assert abs(g.mean() - 1.0) < 0.012  # std of the mean = 1/sqrt(N) = 0.0022
    assert abs(g.var() - 1.0) < 0.035  # std of the variance = sqrt(8/N) = 0.0063
    assert stats.kstest(g[:20_000], "expon").pvalue > 1e-3
    assert rayleigh(jax.random.key(1), (3, 4, 5)).shape == (3, 4, 5)


def test_rician_moments_and_k0_is_rayleigh():
    k = 3.0
    g = np.asarray(rician(jax.random.key(2), k, (N,)))
    assert abs(g.mean() - 1.0) < 0.01
    # unit-mean Rician power has variance (1 + 2K) / (1 + K)^2
    assert abs(g.var() - (1 + 2 * k) / (1 + k) ** 2) < 0.02
    # noncentral chi-square with 2 dof: 2(K+1) g ~ ncx2(2, 2K)
    assert stats.kstest(2 * (k + 1) * g[:20_000], "ncx2", args=(2, 2 * k)).pvalue > 1e-3
    g0 = np.asarray(rician(jax.random.key(3), 0.0, (20_000,)))
    assert stats.kstest(g0, "expon").pvalue > 1e-3
    # per-element K broadcast
    gk = rician(jax.random.key(4), jnp.array([0.0, 10.0]), (50_000, 2))
    np.testing.assert_allclose(np.var(np.asarray(gk), axis=0), [1.0, 21 / 121], atol=0.03)


def test_lognormal_shadowing():
    x = np.asarray(lognormal(jax.random.key(5), 7.82, (N,)))
    assert abs(x.mean()) < 0.06 and abs(x.std() - 7.82) < 0.06
    y = np.asarray(lognormal(jax.random.key(5), jnp.array([4.0, 6.0]), (N, 2)))
    np.testing.assert_allclose(y.std(axis=0), [4.0, 6.0], rtol=0.02)


def _corr(v, lag_y, lag_x):
    """Empirical correlation of v[..., G_y, G_x] at a grid lag, pooled over leading dims."""
    gy, gx = v.shape[-2:]
    a = v[..., : gy - lag_y, : gx - lag_x]
    b = v[..., lag_y:, lag_x:]
    return float(np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b)))


def _per_bs(field):
    """The field's maps as [B, G_y, G_x] (NumPy)."""
    return np.moveaxis(np.asarray(field.values), -1, 0)


def test_correlated_field_std_and_correlation():
    cell, d_corr, sigma = 5.0, 40.0, 6.0
    field = sample_field(
        jax.random.key(6), 16, (160, 160), jnp.zeros(2), cell, sigma, d_corr)
    assert field.values.shape == (160, 160, 16)  # BS-minor layout
    v = _per_bs(field)
    assert abs(v.std() - sigma) < 0.35
    a = np.exp(-cell / d_corr)
    for lag in (1, 4, 8, 16):
        assert abs(_corr(v, 0, lag) - a**lag) < 0.05, lag  # along x
        assert abs(_corr(v, lag, 0) - a**lag) < 0.05, lag  # along y
    # separable product form along the diagonal: exp(-(|dx| + |dy|) / d_corr)
    assert abs(_corr(v, 4, 4) - a**8) < 0.05


def test_field_per_bs_parameters_and_determinism():
    key = jax.random.key(7)
    args = (jnp.zeros(2), 2.0, jnp.array([4.0, 7.82]), jnp.array([50.0, 10.0]))
    f1 = sample_field(key, 2, (120, 120), *args)
    f2 = sample_field(key, 2, (120, 120), *args)
    np.testing.assert_array_equal(f1.values, f2.values)
    v = _per_bs(f1)
    # short decorrelation distance: lag 5 cells = 10 m -> e^-1; long one: e^-0.2
    assert abs(_corr(v[1], 0, 5) - np.exp(-1.0)) < 0.06
    assert v[1].std() == pytest.approx(7.82, rel=0.08)
    assert _corr(v[0], 0, 5) > 0.7


def test_field_vmaps_over_traced_parameters():
    d_corrs = jnp.array([10.0, 40.0])
    sample = jax.jit(jax.vmap(lambda dc: radio.sample_shadowing_field(
        jax.random.key(0), 3, (40, 30), jnp.zeros(2), 2.0, 5.0, dc).values))
    out = sample(d_corrs)
    assert out.shape == (2, 40, 30, 3) and bool(jnp.all(jnp.isfinite(out)))


def test_shadowing_at_bilinear_and_clamped():
    vals = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4) ** 1.5  # [B, G_y, G_x]
    field = radio.ShadowingField(origin=jnp.array([10.0, -5.0]), cell_size=jnp.float32(2.0),
                                 values=jnp.moveaxis(vals, 0, -1))
    v = np.asarray(vals)
    # grid point (i=1, j=2) sits at (10 + 4, -5 + 2)
    np.testing.assert_allclose(lookup(field, jnp.array([14.0, -3.0])), v[:, 1, 2],
                               rtol=1e-6)
    # midpoint of a cell: mean of its four corners
    got = lookup(field, jnp.array([[13.0, -4.0]]))
    assert got.shape == (1, 2)
    np.testing.assert_allclose(got[0], v[:, 0:2, 1:3].mean(axis=(1, 2)), rtol=1e-6)
    # a quarter of the way along x only: linear
    np.testing.assert_allclose(lookup(field, jnp.array([10.5, -5.0])),
                               0.75 * v[:, 0, 0] + 0.25 * v[:, 0, 1], rtol=1e-6)
    # outside the grid: nearest edge (last point is at (16, -1))
    np.testing.assert_allclose(lookup(field, jnp.array([1e9, 1e9])), v[:, 2, 3],
                               rtol=1e-6)
    np.testing.assert_allclose(lookup(field, jnp.array([-1e9, 0.0])),
                               v[:, 2, 0], rtol=1e-6)


def test_moving_user_sees_continuous_shadowing():
    field = sample_field(jax.random.key(8), 4, (50, 50), jnp.zeros(2), 5.0, 6.0, 40.0)
    path = jnp.stack([jnp.linspace(0.0, 245.0, 2000), jnp.linspace(3.0, 200.0, 2000)], axis=-1)
    s = np.asarray(lookup(field, path))
    assert s.shape == (2000, 4)
    # 0.12 m steps through a field with ~0.7 dB change per 5 m cell: tiny increments
    assert np.max(np.abs(np.diff(s, axis=0))) < 0.5


def test_field_validation():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="d_corr"):
        radio.sample_shadowing_field(key, 2, (10, 10), (0.0, 0.0), 1.0, 6.0, 0.0)
    with pytest.raises(ValueError, match="d_corr"):
        radio.sample_shadowing_field(key, 2, (10, 10), (0.0, 0.0), 1.0, 6.0, [5.0, -1.0])
    with pytest.raises(ValueError, match="cell_size"):
        radio.sample_shadowing_field(key, 2, (10, 10), (0.0, 0.0), 0.0, 6.0, 10.0)
    with pytest.raises(ValueError, match="sigma_db"):
        radio.sample_shadowing_field(key, 2, (10, 10), (0.0, 0.0), 1.0, -6.0, 10.0)
    with pytest.raises(ValueError, match="grid_shape"):
        radio.sample_shadowing_field(key, 2, (1, 10), (0.0, 0.0), 1.0, 6.0, 10.0)
    with pytest.raises(ValueError, match="num_bs"):
        radio.sample_shadowing_field(key, 0, (10, 10), (0.0, 0.0), 1.0, 6.0, 10.0)
    with pytest.raises(TypeError, match="num_bs"):
        radio.sample_shadowing_field(key, 2.0, (10, 10), (0.0, 0.0), 1.0, 6.0, 10.0)
    assert radio.grid_shape_for_area(2000.0, 1000.0, 10.0) == (101, 201)
    with pytest.raises(ValueError, match="cell_size_m"):
        radio.grid_shape_for_area(2000.0, 1000.0, 0.0)

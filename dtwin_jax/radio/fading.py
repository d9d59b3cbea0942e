"""Small-scale fading and shadowing: Rayleigh, Rician, i.i.d. and spatially correlated log-normal.

Power gains are linear with unit mean; shadowing is in dB with zero mean. Everything is
pure JAX, jittable and vmappable; static sizes (shapes, grid sizes) are Python ints.

Spatially correlated shadowing
------------------------------
``sample_shadowing_field`` draws, per BS, a Gaussian field on a regular grid whose
correlation between grid points ``(dx, dy)`` apart is the *separable* exponential

    rho(dx, dy) = exp(-|dx| / d_corr) * exp(-|dy| / d_corr),

i.e. exponential in the L1 distance. Along either axis this equals the usual
``exp(-d / d_corr)`` (Gudmundson) model exactly; along diagonals it decorrelates faster
than the Euclidean form ``exp(-||d||_2 / d_corr)`` (by at most a factor sqrt(2) in the
exponent). It is sampled exactly on the grid by an AR(1) recursion
``x_k = a x_{k-1} + sqrt(1 - a^2) w_k`` with ``a = exp(-cell / d_corr)`` along x, then
along y (``lax.scan``), costing O(G_y G_x) per BS. ``shadowing_at`` reads the field by
bilinear interpolation, so a user moving through the map sees a continuous value; keep
``cell_size`` well below ``d_corr`` (e.g. d_corr / 4) so interpolation barely lowers the
variance between grid points. The maps are stored BS-minor (``values [G_y, G_x, B]``): the
lookup of all BSs at a user then reads one contiguous ``[2, 2, B]`` window.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dtwin_jax._checks import check_array, check_float, check_int

__all__ = [
    "rayleigh_gain",
    "rician_gain",
    "lognormal_shadowing_db",
    "ShadowingField",
    "grid_shape_for_area",
    "sample_shadowing_field",
    "shadowing_at",
]


def rayleigh_gain(key, shape: Sequence[int]) -> jax.Array:
    """Rayleigh-fading power gains ``|h|^2 ~ Exp(1)`` (float32, ``shape``)."""
    return jax.random.exponential(key, tuple(shape), jnp.float32)


def rician_gain(key, k_factor, shape: Sequence[int]) -> jax.Array:
    """Rician-fading power gains with linear K-factor ``k_factor`` (broadcast to ``shape``).

    ``h = sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1)``; returns ``|h|^2`` (mean 1). K = 0 is Rayleigh.
    Negative K is treated as 0.
    """
    k = jnp.maximum(jnp.asarray(k_factor, jnp.float32), 0.0)
    n = jax.random.normal(key, (2, *tuple(shape)), jnp.float32)
    los = jnp.sqrt(k / (k + 1.0))
    scatter = jnp.sqrt(0.5 / (k + 1.0))
    return (los + scatter * n[0]) ** 2 + (scatter * n[1]) ** 2


def lognormal_shadowing_db(key, sigma_db, shape: Sequence[int]) -> jax.Array:
    """I.i.d. log-normal shadowing in dB: ``N(0, sigma_db^2)`` of ``shape`` (sigma broadcast)."""
    return jnp.asarray(sigma_db, jnp.float32) * jax.random.normal(key, tuple(shape), jnp.float32)


@struct.dataclass
class ShadowingField:
    """Per-BS shadowing maps on a regular grid.

    Fields:
        origin: [2] float32, (x, y) of grid point ``values[:, 0, 0]`` in m.
        cell_size: [] float32, grid spacing in m (same along x and y).
        values: [G_y, G_x, B] float32, shadowing in dB; ``values[i, j, b]`` (BS b) sits at
            ``origin + (j, i) * cell_size``.
    """

    origin: jax.Array
    cell_size: jax.Array
    values: jax.Array


def grid_shape_for_area(width_m: float, height_m: float, cell_size_m: float) -> tuple[int, int]:
    """Static grid shape ``(G_y, G_x)`` whose points cover a ``width x height`` rectangle."""
    width_m = check_float("width_m", width_m, 0.0, lo_open=True)
    height_m = check_float("height_m", height_m, 0.0, lo_open=True)
    cell_size_m = check_float("cell_size_m", cell_size_m, 0.0, lo_open=True)
    return (int(np.ceil(height_m / cell_size_m)) + 1, int(np.ceil(width_m / cell_size_m)) + 1)


def _check_min(name: str, value, strict: bool) -> None:
    """Validate concrete values (> 0 if ``strict`` else >= 0); traced ones are guarded in jit."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = check_array(name, value)
    if arr.size and (arr.min() <= 0.0 if strict else arr.min() < 0.0):
        allowed = "(0, inf)" if strict else "[0, inf)"
        raise ValueError(f"{name} has entry {arr.min()}; allowed finite values in {allowed}")


def _ar1_along(x: jax.Array, a: jax.Array, axis: int) -> jax.Array:
    """Stationary unit-variance AR(1) filter of white noise ``x`` along ``axis``.

    ``a`` broadcasts against ``x`` with ``axis`` removed.
    """
    xs = jnp.moveaxis(x, axis, 0)
    innov = jnp.sqrt(jnp.maximum(1.0 - a * a, 0.0))

    def step(prev, w):
        cur = a * prev + innov * w
        return cur, cur

    _, rest = jax.lax.scan(step, xs[0], xs[1:])
    return jnp.moveaxis(jnp.concatenate([xs[:1], rest], axis=0), 0, axis)


def sample_shadowing_field(
    key,
    num_bs: int,
    grid_shape: tuple[int, int],
    origin,
    cell_size,
    sigma_db,
    d_corr,
) -> ShadowingField:
    """Sample spatially correlated shadowing maps (separable exponential correlation).

    Args:
        key: PRNG key.
        num_bs: static number of BSs B (one independent map each).
        grid_shape: static ``(G_y, G_x)``, each >= 2 (see ``grid_shape_for_area``).
        origin: [2] (x, y) of the first grid point, m.
        cell_size: [] grid spacing, m, > 0.
        sigma_db: [] or [B] standard deviation of the shadowing, dB, >= 0.
        d_corr: [] or [B] decorrelation distance, m, > 0.

    Returns:
        ``ShadowingField`` with ``values`` [G_y, G_x, B] (dB).
    """
    num_bs = check_int("num_bs", num_bs, 1)
    if len(tuple(grid_shape)) != 2:
        raise ValueError(f"grid_shape={grid_shape!r} must be a pair (G_y, G_x)")
    g_y = check_int("grid_shape[0]", grid_shape[0], 2)
    g_x = check_int("grid_shape[1]", grid_shape[1], 2)
    _check_min("cell_size", cell_size, strict=True)
    _check_min("d_corr", d_corr, strict=True)
    _check_min("sigma_db", sigma_db, strict=False)
    cell = jnp.maximum(jnp.asarray(cell_size, jnp.float32), 1e-6)
    d_corr = jnp.maximum(jnp.broadcast_to(jnp.asarray(d_corr, jnp.float32), (num_bs,)), 1e-6)
    sigma = jnp.broadcast_to(jnp.asarray(sigma_db, jnp.float32), (num_bs,))
    a = jnp.exp(-cell / d_corr)  # [B], broadcasts over the trailing BS axis
    white = jax.random.normal(key, (g_y, g_x, num_bs), jnp.float32)
    field = _ar1_along(_ar1_along(white, a, axis=1), a, axis=0)
    return ShadowingField(
        origin=jnp.asarray(origin, jnp.float32).reshape(2),
        cell_size=cell,
        values=sigma * field,
    )


def shadowing_at(field: ShadowingField, pos) -> jax.Array:
    """Bilinear lookup of every BS's shadowing (dB) at positions ``pos`` [..., 2] (m).

    Positions outside the grid read the nearest edge. Returns [..., B]. Each position reads
    one ``[2, 2, B]`` window of the field and weighs its corners with one small contraction
    (a gather per corner and BS, or elementwise weighting that XLA fuses into every consumer
    of the result, are several times slower on CPU).
    """
    pos = jnp.asarray(pos, jnp.float32)
    g_y, g_x, num_bs = field.values.shape
    flat = pos.reshape(-1, 2)
    u = (flat - field.origin) / field.cell_size
    fx = jnp.clip(u[:, 0], 0.0, g_x - 1.0)
    fy = jnp.clip(u[:, 1], 0.0, g_y - 1.0)
    ix = jnp.clip(jnp.floor(fx).astype(jnp.int32), 0, g_x - 2)
    iy = jnp.clip(jnp.floor(fy).astype(jnp.int32), 0, g_y - 2)
    tx, ty = fx - ix, fy - iy
    zero = jnp.int32(0)
    window = jax.vmap(
        lambda i, j: jax.lax.dynamic_slice(field.values, (i, j, zero), (2, 2, num_bs))
    )(iy, ix)  # [N, 2, 2, B]
    weights = jnp.stack([(1.0 - ty) * (1.0 - tx), (1.0 - ty) * tx, ty * (1.0 - tx), ty * tx],
                        axis=-1)  # [N, 4], corner order of the window
    out = jnp.einsum("nkb,nk->nb", window.reshape(-1, 4, num_bs), weights,
                     precision=jax.lax.Precision.HIGHEST)
    return out.reshape(*pos.shape[:-1], num_bs)

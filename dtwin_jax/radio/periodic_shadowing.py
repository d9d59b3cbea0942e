"""Periodic shadowing tiles: correlated shadowing whose episode start costs almost nothing.

A twin's shadowing must be spatially correlated over the whole area, yet an exact field on a
2 km map at 10 m (201 x 201 x B values, 3.6 MB for 22 BSs) makes every reset ~300 steps long
and every twin's state large. A *tile* is instead an exact sample of a **periodic** Gaussian
field on a ``T x T`` torus of cells (default 64 x 64 at 10 m: a 640 m period), drawn once when
a twin is created and re-used by every later episode with a uniformly random offset on the torus
and one of the 8 symmetries of the square (swap of x and y, sign flips): an episode start costs
a few random numbers, and the tile is ``(T + 1)^2 B`` floats (372 kB at T = 64, B = 22).

Correlation. Per BS the field is separable, with the periodised exponential (Gudmundson /
Ornstein-Uhlenbeck) correlation along each axis: for a lag of ``k`` cells, ``rho = exp(-cell /
d_corr)``,

    c(k) = (rho^k + rho^(T - k)) / (1 + rho^T),      0 <= k <= T,

the correlation of the non-periodic model ``exp(-|k| cell / d_corr)``
(:func:`~dtwin_jax.radio.fading.sample_shadowing_field`, separable in x and y) summed over all
images ``k + m T``, renormalised to unit variance. For ``k`` well below ``T / 2`` it equals the
non-periodic model up to ``rho^(T - 2k)`` (below 2e-3 for d_corr = 50 m, cell 10 m, T = 64,
k <= 16 cells). The price of the period: points ``T cell`` apart along an axis see the same
shadowing of a BS (640 m by default); keep the period well above the distances over which a
BS's signal matters, or raise ``T``.

Sampling is exact for that covariance (a circulant matrix): its eigenvalues have the closed
form ``lambda_j = (1 - rho^2) / (1 - 2 rho cos(2 pi j / T) + rho^2)`` (times the
normalisation), so ``Re FFT2(sqrt(lambda_y lambda_x / T^2) Z)`` with complex white noise ``Z``
is the field. Reading at user positions is a bilinear lookup in one ``[2, 2, B]`` window of the
tile, stored with one wrapped row and column so no index ever wraps inside the window.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dtwin_jax._checks import check_int

__all__ = [
    "ShadowingTile",
    "sample_shadowing_tile",
    "reposition_tile",
    "tile_shadowing_at",
    "periodic_correlation",
    "tile_bytes",
]


@struct.dataclass
class ShadowingTile:
    """A periodic shadowing field of ``B`` BSs and the placement of the current episode.

    Fields:
        values: ``[T + 1, T + 1, B]`` float32 shadowing in dB; ``values[i, j, b]`` is BS b's
            value at cell ``(x = j, y = i)`` of the torus; row ``T`` repeats row 0 and column
            ``T`` repeats column 0.
        cell_size: ``[]`` float32, m.
        offset: ``[2]`` float32, m: the episode's shift of the map on the torus.
        swap: ``[]`` bool: x and y exchanged before the shift.
        flip: ``[2]`` bool: sign of x (then y) reversed before the shift.
    """

    values: jax.Array
    cell_size: jax.Array
    offset: jax.Array
    swap: jax.Array
    flip: jax.Array

    @property
    def period_m(self) -> jax.Array:
        """Period of the tile along each axis, m."""
        return (self.values.shape[0] - 1) * self.cell_size


def tile_bytes(tile_cells: int, num_bs: int) -> int:
    """Bytes of one tile's ``values`` (float32): ``4 (T + 1)^2 B``."""
    return 4 * (tile_cells + 1) ** 2 * num_bs


def periodic_correlation(lag_cells, cell_size, d_corr, tile_cells: int) -> np.ndarray:
    """Closed-form correlation ``c(k)`` of the tile along one axis (NumPy; see module doc).

    ``lag_cells``: integer lags ``k`` (any shape, taken modulo ``T``); returns float64 of the
    broadcast shape.
    """
    t = check_int("tile_cells", tile_cells, lo=2)
    k = np.mod(np.asarray(lag_cells), t).astype(np.float64)
    rho = np.exp(-np.asarray(cell_size, np.float64) / np.asarray(d_corr, np.float64))
    return (rho**k + rho ** (t - k)) / (1.0 + rho**t)


def _axis_spectrum(rho: jax.Array, tile_cells: int) -> jax.Array:
    """Eigenvalues ``[..., T]`` of the unit-variance periodised exponential correlation."""
    theta = 2.0 * jnp.pi * jnp.arange(tile_cells, dtype=jnp.float32) / tile_cells
    r = rho[..., None]
    lam = (1.0 - r * r) / jnp.maximum(1.0 - 2.0 * r * jnp.cos(theta) + r * r, 1e-12)
    var = (1.0 + rho**tile_cells) / jnp.maximum(1.0 - rho**tile_cells, 1e-12)  # c_unnorm(0)
    return lam / var[..., None]


def sample_shadowing_tile(
    key: jax.Array, num_bs: int, tile_cells: int, cell_size, sigma_db, d_corr
) -> ShadowingTile:
    """Draw a tile (identity placement; see :func:`reposition_tile` for an episode's one).

    Args:
        key: PRNG key.
        num_bs: static number of BSs B (independent maps).
        tile_cells: static period T in cells (>= 2).
        cell_size: ``[]`` m, > 0 (validate before tracing).
        sigma_db: ``[]`` or ``[B]`` standard deviation, dB, >= 0.
        d_corr: ``[]`` or ``[B]`` decorrelation distance, m, > 0.
    Returns:
        :class:`ShadowingTile` with ``values [T + 1, T + 1, B]`` dB.
    """
    num_bs = check_int("num_bs", num_bs, lo=1)
    t = check_int("tile_cells", tile_cells, lo=2)
    cell = jnp.maximum(jnp.asarray(cell_size, jnp.float32), 1e-6)
    d_corr = jnp.maximum(jnp.broadcast_to(jnp.asarray(d_corr, jnp.float32), (num_bs,)), 1e-6)
    sigma = jnp.broadcast_to(jnp.asarray(sigma_db, jnp.float32), (num_bs,))
    lam = _axis_spectrum(jnp.exp(-cell / d_corr), t)  # [B, T], same along x and y
    amp = jnp.sqrt(jnp.maximum(lam[:, :, None] * lam[:, None, :], 0.0)) / t  # [B, T, T]
    noise = jax.random.normal(key, (2, num_bs, t, t), jnp.float32)
    field = jnp.fft.fft2(amp * jax.lax.complex(noise[0], noise[1])).real  # [B, T, T]
    field = jnp.moveaxis(field * sigma[:, None, None], 0, -1)  # [T, T, B]
    field = jnp.concatenate([field, field[:1]], axis=0)
    field = jnp.concatenate([field, field[:, :1]], axis=1)
    return ShadowingTile(
        values=field.astype(jnp.float32),
        cell_size=cell,
        offset=jnp.zeros(2, jnp.float32),
        swap=jnp.bool_(False),
        flip=jnp.zeros(2, bool),
    )


def reposition_tile(key: jax.Array, tile: ShadowingTile) -> ShadowingTile:
    """The same tile at a uniformly random offset and one of the 8 square symmetries."""
    u = jax.random.uniform(key, (5,), jnp.float32)
    return tile.replace(offset=u[:2] * tile.period_m, swap=u[2] < 0.5, flip=u[3:] < 0.5)


def tile_shadowing_at(tile: ShadowingTile, pos) -> jax.Array:
    """Every BS's shadowing (dB) at positions ``pos [..., 2]`` (m): returns ``[..., B]``.

    The position is mapped by the episode's symmetry and offset onto the torus and read by
    bilinear interpolation of one ``[2, 2, B]`` window (continuous in the position).
    """
    pos = jnp.asarray(pos, jnp.float32)
    t1, _, num_bs = tile.values.shape
    t = t1 - 1
    flat = pos.reshape(-1, 2)
    flat = jnp.where(tile.swap, flat[:, ::-1], flat)
    flat = jnp.where(tile.flip, -flat, flat) + tile.offset
    u = jnp.mod(flat / tile.cell_size, float(t))  # [N, 2] in [0, T]
    i = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, t - 1)
    frac = jnp.clip(u - i, 0.0, 1.0)
    tx, ty = frac[:, 0], frac[:, 1]
    zero = jnp.int32(0)
    window = jax.vmap(
        lambda iy, ix: jax.lax.dynamic_slice(tile.values, (iy, ix, zero), (2, 2, num_bs))
    )(i[:, 1], i[:, 0])  # [N, 2, 2, B]
    weights = jnp.stack([(1.0 - ty) * (1.0 - tx), (1.0 - ty) * tx, ty * (1.0 - tx), ty * tx],
                        axis=-1)  # [N, 4], corner order of the window
    # (an element-wise lerp instead of this einsum runs faster on CPU, but changes the
    # float rounding and with it every committed experiment's exact numbers)
    out = jnp.einsum("nkb,nk->nb", window.reshape(-1, 4, num_bs), weights,
                     precision=jax.lax.Precision.HIGHEST)
    return out.reshape(*pos.shape[:-1], num_bs)

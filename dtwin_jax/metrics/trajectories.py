"""Similarity of trajectory sets: EDR, DTW, JSDs, Wasserstein distances, on-road ratio.

Trajectories are arrays of points ``[..., L, 2]`` in metres (or any common unit). All
functions are pure JAX, jitted (sizes such as ``grid`` and ``bins`` are static Python
ints) and vmappable except ``grid_wasserstein``, an exact linear program solved by SciPy in NumPy.

* ``edr`` / ``dtw``: one pair of sequences ``[L1, 2]``, ``[L2, 2]``; ``edr_batch`` /
  ``dtw_batch`` map them over a leading pair axis (``jax.vmap``).
* JSDs use the natural logarithm: identical distributions give 0, distributions with
  disjoint supports give ``ln 2 ~= 0.693``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_array

_BIG = 1e30
_CHUNK = 1024


def _edit_table(cost: jax.Array, edr: bool) -> jax.Array:
    """Last cell of the DTW (``edr=False``) or EDR edit-distance table of ``cost [n, m]``.

    The (n+1) x (m+1) table is swept one anti-diagonal at a time (``lax.scan``); row and
    column 0 hold the empty-prefix boundary (EDR: the prefix length; DTW: 0 at the corner,
    +inf elsewhere).
    """
    n, m = cost.shape
    i = jnp.arange(n + 1)

    def boundary(k):
        return k.astype(cost.dtype) if edr else jnp.where(k == 0, 0.0, _BIG).astype(cost.dtype)

    def step(carry, d):
        prev2, prev1 = carry  # diagonals d-2 and d-1, indexed by row i
        j = d - i
        c = cost[jnp.clip(i - 1, 0, n - 1), jnp.clip(j - 1, 0, m - 1)]
        diag = jnp.roll(prev2, 1)
        up = jnp.roll(prev1, 1)
        left = prev1
        if edr:
            val = jnp.minimum(diag + c, jnp.minimum(up, left) + 1.0)
        else:
            val = c + jnp.minimum(diag, jnp.minimum(up, left))
        val = jnp.where(i == 0, boundary(j), jnp.where(j == 0, boundary(i), val))
        val = jnp.where((j >= 0) & (j <= m), val, _BIG)
        return (prev1, val), None

    init = jnp.full((n + 1,), _BIG, cost.dtype)
    first = jnp.where(i == 0, 0.0, _BIG).astype(cost.dtype)
    (_, last), _ = jax.lax.scan(step, (init, first), jnp.arange(1, n + m + 1))
    return last[n]


@jax.jit
def edr(a: jax.Array, b: jax.Array, eps: float | jax.Array) -> jax.Array:
    """Edit Distance on Real sequences of ``a [L1, 2]`` and ``b [L2, 2]``, in [0, 1].

    Two points match when they differ by at most ``eps`` in EVERY coordinate (Chen, Ozsu
    and Oria, 2005); a match costs 0, a substitution, insertion or deletion 1. The edit
    distance is divided by ``max(L1, L2)``: identical sequences give 0, sequences of equal
    length with no matching pair give 1.
    """
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    diff = jnp.abs(a[:, None, :] - b[None, :, :])
    cost = jnp.where(jnp.all(diff <= eps, axis=-1), 0.0, 1.0)
    return _edit_table(cost, edr=True) / max(a.shape[0], b.shape[0])


@jax.jit
def dtw(a: jax.Array, b: jax.Array) -> jax.Array:
    """Dynamic time warping distance of ``a [L1, 2]`` and ``b [L2, 2]``.

    The minimum over monotone alignments of the SUM of Euclidean distances of aligned
    points (same unit as the input; not normalised by length).
    """
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    cost = jnp.sqrt(jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1))
    return _edit_table(cost, edr=False)


@jax.jit
def edr_batch(a: jax.Array, b: jax.Array, eps: float | jax.Array) -> jax.Array:
    """``edr`` of pairs ``a [B, L1, 2]``, ``b [B, L2, 2]`` -> ``[B]``."""
    return jax.vmap(edr, in_axes=(0, 0, None))(a, b, eps)


@jax.jit
def dtw_batch(a: jax.Array, b: jax.Array) -> jax.Array:
    """``dtw`` of pairs ``a [B, L1, 2]``, ``b [B, L2, 2]`` -> ``[B]``."""
    return jax.vmap(dtw)(a, b)


@jax.jit
def jsd(p: jax.Array, q: jax.Array) -> jax.Array:
    """Jensen-Shannon divergence (natural log) of histograms ``p``, ``q`` (same shape).

    Both are normalised to sum 1 first (an all-zero histogram counts as uniform).
    Result in [0, ln 2].
    """
    p, q = _normalise(p), _normalise(q)
    mid = 0.5 * (p + q)

    def kl(x):
        return jnp.sum(jnp.where(x > 0, x * (jnp.log(jnp.maximum(x, 1e-30)) - jnp.log(
            jnp.maximum(mid, 1e-30))), 0.0))  # fmt: skip

    return jnp.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, math.log(2.0))


def _normalise(h: jax.Array) -> jax.Array:
    h = jnp.asarray(h, jnp.float32).ravel()
    total = jnp.sum(h)
    return jnp.where(total > 0, h / jnp.maximum(total, 1e-30), 1.0 / h.size)


@partial(jax.jit, static_argnames="grid")
def grid_histogram(points: jax.Array, bounds: jax.Array, grid: int = 16) -> jax.Array:
    """Counts of ``points [..., 2]`` in a ``grid x grid`` partition of ``bounds [2, 2]``.

    ``bounds`` is ``[[x_min, y_min], [x_max, y_max]]``; points outside are counted in the
    nearest border cell. Returns ``[grid, grid]`` float32 indexed ``[iy, ix]``.
    """
    pts = jnp.asarray(points, jnp.float32).reshape(-1, 2)
    bounds = jnp.asarray(bounds, jnp.float32)
    span = jnp.maximum(bounds[1] - bounds[0], 1e-6)
    cell = jnp.clip(jnp.floor((pts - bounds[0]) / span * grid), 0, grid - 1).astype(jnp.int32)
    flat = cell[:, 1] * grid + cell[:, 0]
    return jnp.zeros(grid * grid, jnp.float32).at[flat].add(1.0).reshape(grid, grid)


@partial(jax.jit, static_argnames="grid")
def density_jsd(real: jax.Array, gen: jax.Array, bounds: jax.Array, grid: int = 16) -> jax.Array:
    """JSD (natural log) between the ``grid x grid`` visit densities of all points.

    ``real [..., 2]`` and ``gen [..., 2]`` (any numbers of points), ``bounds [2, 2]``.
    """
    return jsd(grid_histogram(real, bounds, grid), grid_histogram(gen, bounds, grid))


@partial(jax.jit, static_argnames="grid")
def trip_jsd(real: jax.Array, gen: jax.Array, bounds: jax.Array, grid: int = 16) -> jax.Array:
    """JSD (natural log) between grid densities of trip end points (origins and destinations).

    ``real [B1, L, 2]``, ``gen [B2, L2, 2]``: each trajectory contributes its first and its
    last point to one ``grid x grid`` histogram per set.
    """
    ends = lambda t: jnp.stack([t[..., 0, :], t[..., -1, :]])
    return density_jsd(ends(real), ends(gen), bounds, grid)


@jax.jit
def path_lengths(traj: jax.Array) -> jax.Array:
    """Travelled distance of each trajectory ``[..., L, 2]`` -> ``[...]`` (sum of steps)."""
    steps = jnp.diff(jnp.asarray(traj, jnp.float32), axis=-2)
    return jnp.sum(jnp.sqrt(jnp.sum(steps**2, axis=-1)), axis=-1)


@partial(jax.jit, static_argnames="bins")
def trip_length_jsd(real: jax.Array, gen: jax.Array, bins: int = 32) -> jax.Array:
    """JSD (natural log) between histograms of per-trajectory path lengths.

    ``real [..., L, 2]``, ``gen [..., L2, 2]``; ``bins`` equal bins over ``[0, m]`` with
    ``m`` the longest path of both sets.
    """
    lr, lg = path_lengths(real).ravel(), path_lengths(gen).ravel()
    top = jnp.maximum(jnp.maximum(lr.max(), lg.max()), 1e-6)

    def hist(x):
        k = jnp.clip(jnp.floor(x / top * bins), 0, bins - 1).astype(jnp.int32)
        return jnp.zeros(bins, jnp.float32).at[k].add(1.0)

    return jsd(hist(lr), hist(lg))


@jax.jit
def wasserstein_1d(x: jax.Array, y: jax.Array) -> jax.Array:
    """Exact Wasserstein-1 distance between the empirical distributions of samples ``x``, ``y``.

    Any shapes (flattened, sizes may differ): the integral of ``|F_x - F_y|`` over the
    merged sorted sample points.
    """
    x = jnp.sort(jnp.asarray(x, jnp.float32).ravel())
    y = jnp.sort(jnp.asarray(y, jnp.float32).ravel())
    allv = jnp.sort(jnp.concatenate([x, y]))
    fx = jnp.searchsorted(x, allv[:-1], side="right") / x.size
    fy = jnp.searchsorted(y, allv[:-1], side="right") / y.size
    return jnp.sum(jnp.abs(fx - fy) * jnp.diff(allv))


@partial(jax.jit, static_argnames="num_projections")
def sliced_wasserstein(
    key: jax.Array, real: jax.Array, gen: jax.Array, num_projections: int = 64
) -> jax.Array:
    """Sliced Wasserstein-1 distance of two 2D point sets ``[..., 2]`` (metres).

    The mean over ``num_projections`` random unit directions of the exact 1D
    Wasserstein-1 distance between the projected points (a Monte Carlo estimate of the
    sliced W1; it is a lower bound of the 2D W1).
    """
    theta = jax.random.uniform(key, (num_projections,), maxval=2 * jnp.pi)
    dirs = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    r = jnp.asarray(real, jnp.float32).reshape(-1, 2) @ dirs.T
    g = jnp.asarray(gen, jnp.float32).reshape(-1, 2) @ dirs.T
    return jnp.mean(jax.vmap(wasserstein_1d, in_axes=(1, 1))(r, g))


def grid_wasserstein(real, gen, bounds, grid: int = 8) -> float:
    """Exact 2D Wasserstein-1 (earth mover's) distance between ``grid x grid`` densities.

    Points ``[..., 2]`` are binned as in ``grid_histogram``; mass sits at cell centres and
    moves at Euclidean cost (metres). Solved exactly as a transport linear program with
    ``scipy.optimize.linprog`` (HiGHS) over the occupied cells: NumPy, not jittable.
    """
    bounds = np.asarray(bounds, np.float64)
    p = np.asarray(_normalise(grid_histogram(real, bounds, grid)), np.float64)
    q = np.asarray(_normalise(grid_histogram(gen, bounds, grid)), np.float64)
    iy, ix = np.divmod(np.arange(grid * grid), grid)
    centres = bounds[0] + (np.stack([ix, iy], 1) + 0.5) / grid * (bounds[1] - bounds[0])
    src, dst = np.flatnonzero(p > 0), np.flatnonzero(q > 0)
    p, q = p[src] / p[src].sum(), q[dst] / q[dst].sum()
    cost = np.linalg.norm(centres[src][:, None] - centres[dst][None], axis=-1)
    ns, nd = len(src), len(dst)
    rows = np.concatenate([np.repeat(np.arange(ns), nd), ns + np.tile(np.arange(nd), ns)])
    cols = np.concatenate([np.arange(ns * nd), np.arange(ns * nd)])
    a_eq = coo_array((np.ones(2 * ns * nd), (rows, cols)), shape=(ns + nd, ns * nd)).tocsr()
    b_eq = np.concatenate([p, q])
    # One marginal constraint is implied by the others (both sum to 1): drop the last.
    res = linprog(cost.ravel(), A_eq=a_eq[:-1], b_eq=b_eq[:-1], method="highs")
    if not res.success:
        raise RuntimeError(f"transport linear program failed: {res.message}")
    return float(res.fun)


def distance_to_segments(points: jax.Array, a: jax.Array, b: jax.Array, mask=None) -> jax.Array:
    """Distance from each of ``points [..., 2]`` to the nearest segment ``a[e] -> b[e]``.

    ``a``, ``b`` are ``[E, 2]`` segment end points; ``mask [E]`` (optional, bool) leaves
    segments out (all masked: ~1e15). Returns ``[...]`` in the unit of the input. Points go
    in chunks of 1024, so memory stays at ``1024 * E`` floats; point and segment counts are
    padded to powers of two so eager calls on different maps reuse a few compiled kernels.
    """
    shape = jnp.shape(points)[:-1]
    num, e = math.prod(shape), jnp.shape(a)[0]
    flat = _pad_rows(jnp.reshape(points, (num, 2)), max(_CHUNK, _pow2(num)), jnp.float32)
    a = _pad_rows(a, max(64, _pow2(e)), jnp.float32)
    b = _pad_rows(b, max(64, _pow2(e)), jnp.float32)
    mask = _pad_rows(np.ones(e, bool) if mask is None else mask, max(64, _pow2(e)), bool)
    dist = _segment_distance(flat.reshape(-1, _CHUNK, 2), a, b, mask)
    return dist.reshape(-1)[:num].reshape(shape)


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _pad_rows(x, size: int, dtype):
    """``x`` with zero rows appended up to ``size`` rows, as ``dtype``.

    Concrete inputs are padded in NumPy (no per-shape compilation), traced ones in JAX.
    """
    if isinstance(x, jax.core.Tracer):
        x = x.astype(dtype)
        return jnp.concatenate([x, jnp.zeros((size - x.shape[0],) + x.shape[1:], dtype)])
    x = np.asarray(x, dtype)
    return np.concatenate([x, np.zeros((size - x.shape[0],) + x.shape[1:], dtype)])


@jax.jit
def _segment_distance(chunks: jax.Array, a: jax.Array, b: jax.Array, mask: jax.Array):
    """``[C, chunk, 2]`` points -> ``[C, chunk]`` distances to the nearest unmasked segment."""
    ab = b - a
    ab2 = jnp.maximum(jnp.sum(ab**2, axis=-1), 1e-12)

    def nearest(p):
        rel = p[:, None, :] - a[None]
        t = jnp.clip(jnp.sum(rel * ab[None], axis=-1) / ab2, 0.0, 1.0)
        d2 = jnp.sum((rel - t[..., None] * ab[None]) ** 2, axis=-1)
        return jnp.sqrt(jnp.min(jnp.where(mask[None], d2, _BIG), axis=-1))

    return jax.lax.map(nearest, chunks)


def distance_to_streets(points: jax.Array, graph) -> jax.Array:
    """Distance (m) from ``points [..., 2]`` to the nearest street of a ``StreetGraph``."""
    a, b = graph.nodes[graph.edges[:, 0]], graph.nodes[graph.edges[:, 1]]
    return distance_to_segments(points, a, b, graph.edge_mask)


def on_road_ratio(traj: jax.Array, graph, width_m: float | jax.Array = 10.0) -> jax.Array:
    """Share of the points ``traj [..., 2]`` within ``width_m`` metres of a street segment."""
    return jnp.mean(distance_to_streets(traj, graph) <= width_m)

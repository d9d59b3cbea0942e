"""Batched, jittable linear sum assignment (exact, shortest augmenting paths).

``linear_sum_assignment`` has the meaning of ``scipy.optimize.linear_sum_assignment``;
``batched_linear_sum_assignment`` solves a whole batch ``cost[..., n, m]`` at once.

Algorithm (Jonker-Volgenant style, written for a batch as the vectorised axis):

1. Orient every problem so that it has ``r = min(n, m)`` rows and ``c = max(n, m)``
   columns. Row reduction gives dual potentials (row ``u_i = min_j C_ij``, column
   ``v_j = 0``); a few vectorised greedy rounds match rows to free columns of zero
   reduced cost. This assigns most rows without any search.
2. The batch is cut into chunks of 32 problems (64 for at most 16 columns), solved one
   after the other. In a chunk, one ``lax.while_loop`` performs in every iteration ONE
   Dijkstra step on every problem that still has a free row (the batch is the contiguous,
   vectorised axis): scan the current row, relax the distances of the unscanned columns,
   settle the nearest column (ties prefer a free column). When a free column is settled,
   the augmenting path is applied in the same iteration: every column carries the bit set
   of the columns on its tree path, so the path is read off in one vectorised step
   instead of a pointer chase. Column potentials are then updated exactly as in JV and
   the next free row starts.

Row potentials are never stored: for an assigned row ``u_i = C_{i, col(i)} - v_{col(i)}``.
No tolerance is used anywhere; with integer-valued costs (below 2**24 in float32) every
operation is exact, and with real costs the result is optimal up to rounding. Costs are
computed in float32, or float64 when given float64 with ``jax_enable_x64``; finite costs
should stay well below the dtype's overflow (|cost| * k < 1e30 in float32).

Masks: ``mask[i, j] = False`` forbids the pair. Forbidden (and non-finite) entries are
replaced by a large cost ``BIG > k * (max - min of the allowed costs)``, so the result
maximises the number of allowed pairs first and minimises the cost among those. Any pair
that still lands on a forbidden entry (a row or column with no allowed partner left)
is reported with ``col_ind = -1`` (``row_ind`` keeps its row).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap

__all__ = ["batched_linear_sum_assignment", "linear_sum_assignment"]

_GREEDY_ROUNDS = 2
_CHUNK = 32  # problems solved together in one loop (tuned on a 2-core CPU)
_CHUNK_SMALL = 64  # the same for at most 16 columns


def linear_sum_assignment(cost, maximize: bool = False, mask=None):
    """Solve one assignment problem like ``scipy.optimize.linear_sum_assignment``.

    Args:
      cost: ``[n, m]`` real costs.
      maximize: if True, maximise the total instead (static Python bool).
      mask: optional ``[n, m]`` bool, False = forbidden pair (see module docstring).

    Returns:
      ``(row_ind, col_ind)``, int32 arrays of length ``k = min(n, m)``; ``row_ind`` is
      sorted ascending and ``cost[row_ind, col_ind].sum()`` is optimal. With a mask,
      ``col_ind`` is -1 where a row could only be given a forbidden column.

    Under ``jax.vmap`` this dispatches to the batched solver (a custom vmap rule), so
    ``jax.vmap(linear_sum_assignment)(cost[B, n, m])`` is as fast as the batched entry point.
    """
    cost = _as_cost(cost, ndim=2)
    _check_maximize(maximize)
    mask = jnp.ones(cost.shape, bool) if mask is None else _as_mask(mask, cost.shape)
    # indices carry no gradient; stopping it lets callers differentiate through the costs
    return _SINGLE[maximize](lax.stop_gradient(cost), mask)


def batched_linear_sum_assignment(cost, maximize: bool = False, mask=None):
    """Solve ``cost[..., n, m]`` (any leading batch shape), vectorised over the batch.

    Returns ``(row_ind, col_ind)`` of shape ``[..., k]`` with ``k = min(n, m)``, each
    problem's result as in :func:`linear_sum_assignment`.
    """
    cost = _as_cost(cost, ndim=None)
    _check_maximize(maximize)
    if mask is not None:
        mask = _as_mask(mask, cost.shape)
    *batch, n, m = cost.shape
    flat = cost.reshape(-1, n, m)
    flat_mask = None if mask is None else mask.reshape(-1, n, m)
    rows, cols = _solve(flat, flat_mask, maximize)
    k = min(n, m)
    return rows.reshape(*batch, k), cols.reshape(*batch, k)


def _make_single(maximize: bool):
    @custom_vmap
    def single(cost, mask):
        rows, cols = _solve(cost[None], mask[None], maximize)
        return rows[0], cols[0]

    @single.def_vmap
    def _rule(axis_size, in_batched, cost, mask):
        cost = cost if in_batched[0] else jnp.broadcast_to(cost, (axis_size, *cost.shape))
        mask = mask if in_batched[1] else jnp.broadcast_to(mask, (axis_size, *mask.shape))
        return _solve(cost, mask, maximize), (True, True)

    return single


def _check_maximize(maximize):
    if not isinstance(maximize, bool):
        raise TypeError(f"maximize must be a Python bool, got {type(maximize).__name__}")


def _as_cost(cost, ndim):
    if not hasattr(cost, "shape") or not hasattr(cost, "dtype"):
        cost = np.asarray(cost)
    if ndim is not None and cost.ndim != ndim:
        raise ValueError(f"cost must have {ndim} dimensions [n, m], got shape {cost.shape}")
    if cost.ndim < 2:
        raise ValueError(f"cost must have shape [..., n, m], got shape {cost.shape}")
    if not (jnp.issubdtype(cost.dtype, jnp.number) or cost.dtype == bool) or jnp.issubdtype(
        cost.dtype, jnp.complexfloating
    ):
        raise TypeError(f"cost must be a real array, got dtype {cost.dtype}")
    return cost


def _as_mask(mask, shape):
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected {tuple(shape)}")
    return mask


@functools.partial(jax.jit, static_argnums=2)
def _solve(cost, mask, maximize):
    """``cost[B, n, m]`` -> (row_ind[B, k], col_ind[B, k]) int32."""
    dtype = jnp.result_type(cost.dtype, jnp.float32)
    cost = jnp.asarray(cost, dtype)
    if maximize:
        cost = -cost
    allowed = jnp.isfinite(cost)
    if mask is not None:
        allowed = allowed & jnp.asarray(mask, bool)
    nb, n, m = cost.shape
    k = min(n, m)
    if k == 0:
        empty = jnp.zeros((nb, 0), jnp.int32)
        return empty, empty
    transpose = n > m
    work = _substitute_forbidden(cost, allowed, k)
    if transpose:
        work = jnp.swapaxes(work, 1, 2)
    col4row = _solve_wide(work)  # [B, k]: column of each row of the wide problem
    if transpose:
        # wide rows are original columns: sort the pairs by original row
        order = jnp.argsort(col4row, axis=1).astype(jnp.int32)
        row_ind = jnp.take_along_axis(col4row, order, axis=1)
        col_ind = order
    else:
        row_ind = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), col4row.shape)
        col_ind = col4row
    ok = allowed[jnp.arange(nb)[:, None], row_ind, col_ind]
    return row_ind, jnp.where(ok, col_ind, -1)


def _substitute_forbidden(cost, allowed, k):
    """Replace forbidden entries by a cost that no allowed alternative can beat."""
    big_axes = (1, 2)
    lo = jnp.min(jnp.where(allowed, cost, jnp.inf), axis=big_axes, keepdims=True)
    hi = jnp.max(jnp.where(allowed, cost, -jnp.inf), axis=big_axes, keepdims=True)
    any_ok = jnp.any(allowed, axis=big_axes, keepdims=True)
    lo = jnp.where(any_ok, lo, 0.0)
    spread = jnp.where(any_ok, hi - lo, 0.0)
    big = lo + (k + 1) * spread + 1.0
    return jnp.where(allowed, cost, big)


def _first(mask, axis=0):
    """Index of the first True along ``axis`` (its size when none); avoids argmax, which
    XLA CPU lowers poorly for reductions over a non-minor axis."""
    size = mask.shape[axis]
    shape = [1] * mask.ndim
    shape[axis] = size
    iota = jnp.arange(size, dtype=jnp.int32).reshape(shape)
    return jnp.min(jnp.where(mask, iota, size), axis=axis)


def _take(x, idx):
    """``x[idx[b], ..., b]`` for ``x[c, ..., B]`` and ``idx[B]`` (a gather of B elements)."""
    idx = jnp.clip(idx, 0, x.shape[0] - 1)
    return jnp.take_along_axis(x, idx.reshape((1,) + (1,) * (x.ndim - 2) + (-1,)), axis=0)[0]


def _solve_wide(cost):
    """Exact assignment for ``cost[B, r, c]`` with ``r <= c``; returns col4row[B, r].

    The batch is solved in chunks, one after the other (``lax.map``): a chunk's loop state
    stays in cache, and a slow problem holds back only the loop of its own chunk.
    """
    nb, r, c = cost.shape
    chunk = _CHUNK_SMALL if c <= 16 else _CHUNK
    if nb <= chunk:
        return _solve_chunk(cost)
    pad = -nb % chunk
    if pad:  # trivial all-zero problems
        cost = jnp.concatenate([cost, jnp.zeros((pad, r, c), cost.dtype)])
    out = lax.map(_solve_chunk, cost.reshape(-1, chunk, r, c))
    return out.reshape(-1, r)[:nb]


def _solve_chunk(cost):
    nb, r, c = cost.shape
    v, row4col, row_free = _greedy_start(jnp.transpose(cost, (1, 2, 0)))
    # a plain buffer for the row gathers of the loop (else the gather re-reads the chunk
    # through the slicing of ``lax.map``, many times slower)
    cost_rows = lax.optimization_barrier(cost.reshape(nb * r, c))
    row4col = _search(cost_rows, v, row4col, row_free)
    rows = jnp.arange(r, dtype=jnp.int32)[:, None]
    cols = jnp.arange(c, dtype=jnp.int32)[:, None]
    match = row4col[None, :, :] == rows[:, :, None]  # [r, c, B]
    col4row = jnp.sum(jnp.where(match, cols[None], 0), axis=1)
    return col4row.T.astype(jnp.int32)


def _greedy_start(cost):
    """Dual potentials and a partial assignment of zero reduced cost for ``cost[r, c, B]``.

    Returns column potentials ``v[c, B]``, ``row4col[c, B]`` (-1 = free) and
    ``row_free[r, B]``.
    """
    r, c, nb = cost.shape
    dtype = cost.dtype
    cols = jnp.arange(c, dtype=jnp.int32)[:, None]
    rows = jnp.arange(r, dtype=jnp.int32)[:, None]
    red = cost - jnp.min(cost, axis=1, keepdims=True)  # row reduction: u_i = min_j C_ij
    if r == c:  # column reduction keeps free columns at equal v only when none stays free
        v = jnp.min(red, axis=0)
        red = red - v[None]
    else:
        v = jnp.zeros((c, nb), dtype)
    row4col = jnp.full((c, nb), -1, jnp.int32)
    row_free = jnp.ones((r, nb), bool)
    zero = red == 0
    for _ in range(_GREEDY_ROUNDS):
        cand = zero & row_free[:, None, :] & (row4col < 0)[None, :, :]
        # each free row proposes its first free zero column ...
        first = _first(cand, axis=1)
        prop = cand & (cols[None] == first[:, None, :])
        # ... and each column accepts its first proposer
        taker = _first(prop, axis=0)
        got = jnp.any(prop, axis=0)
        row4col = jnp.where(got, taker, row4col)
        accepted = prop & (rows[:, :, None] == taker[None])
        row_free = row_free & ~jnp.any(accepted, axis=1)
    return v, row4col, row_free


def _search(cost_rows, v, row4col, row_free):
    """Shortest augmenting paths from every free row; ``cost_rows[B * r, c]`` (problem-major),
    state as returned by :func:`_greedy_start`. Returns the final ``row4col[c, B]``."""
    c, nb = v.shape
    r = row_free.shape[0]
    dtype = v.dtype
    row_base = jnp.arange(nb, dtype=jnp.int32) * r
    cols = jnp.arange(c, dtype=jnp.int32)[:, None]
    rows = jnp.arange(r, dtype=jnp.int32)[:, None]

    words = (c + 31) // 32
    colv = jnp.arange(c, dtype=jnp.int32)
    bit = jnp.zeros((c, words), jnp.uint32)
    bit = bit.at[colv, colv // 32].set(
        jnp.left_shift(jnp.uint32(1), (colv % 32).astype(jnp.uint32))
    )[:, :, None]  # [c, W, 1]
    shift = (colv % 32).astype(jnp.uint32)[:, None]
    inf = jnp.asarray(jnp.inf, dtype)

    first_free = _first(row_free)
    state = dict(
        v=v,
        row4col=row4col,
        row_free=row_free,
        active=jnp.any(row_free, axis=0),
        cur=first_free,  # row being scanned now
        jprev=jnp.full((nb,), -1, jnp.int32),  # column through which `cur` was reached
        min_val=jnp.zeros((nb,), dtype),
        spc=jnp.full((c, nb), inf),
        scanned=jnp.zeros((c, nb), bool),
        path=jnp.zeros((c, nb), jnp.int32),
        tree=jnp.zeros((c, words, nb), jnp.uint32),
        tree_cur=jnp.zeros((words, nb), jnp.uint32),
        start=first_free,  # free row whose augmenting path is being searched
    )

    def cond(s):
        return jnp.any(s["active"])

    def body(s):
        v, row4col, spc, scanned = s["v"], s["row4col"], s["spc"], s["scanned"]
        act, cur, jprev = s["active"], s["cur"], s["jprev"]
        cv = jnp.take(cost_rows, row_base + cur, axis=0).T - v  # [c, B]
        base = jnp.where(jprev >= 0, _take(cv, jprev), 0.0)  # u of the current row
        dist = cv + (s["min_val"] - base)[None]
        upd = (~scanned) & (dist < spc) & act[None]
        spc = jnp.where(upd, dist, spc)
        path = jnp.where(upd, cur[None], s["path"])
        tree = jnp.where(upd[:, None, :], s["tree_cur"][None] | bit, s["tree"])
        key = jnp.where(scanned, inf, spc)
        lowest = jnp.min(key, axis=0)
        free_col = row4col < 0
        # nearest column, ties broken towards a free column, then the lowest index
        rank = jnp.where(free_col, cols, cols + c)
        j = jnp.min(jnp.where(key == lowest[None], rank, 2 * c), axis=0)
        j = jnp.where(j >= c, j - c, j)
        next_row = _take(row4col, j)
        sink = (next_row < 0) & act
        step = act & ~sink
        tree_j = _take(tree, j)  # [W, B]
        scanned_new = scanned | ((cols == j[None]) & step[None])

        # augment along the tree path of the sink and update column potentials
        on_path = ((tree_j[colv // 32] >> shift) & 1) > 0
        on_path = on_path & sink[None]
        row4col = jnp.where(on_path, path, row4col)
        v = jnp.where(scanned & sink[None], v - (lowest[None] - spc), v)
        row_free = s["row_free"] & ~((rows == s["start"][None]) & sink[None])
        nxt_start = _first(row_free)
        active = act & ~(sink & ~jnp.any(row_free, axis=0))

        sk = sink[None]
        return dict(
            v=v,
            row4col=row4col,
            row_free=row_free,
            active=active,
            cur=jnp.where(sink, nxt_start, jnp.where(step, next_row, cur)),
            jprev=jnp.where(sink, -1, jnp.where(step, j, jprev)),
            min_val=jnp.where(sink, 0.0, jnp.where(step, lowest, s["min_val"])).astype(dtype),
            spc=jnp.where(sk, inf, spc),
            scanned=jnp.where(sk, False, scanned_new),
            path=path,
            tree=tree,
            tree_cur=jnp.where(sk, jnp.uint32(0), jnp.where(step[None], tree_j, s["tree_cur"])),
            start=jnp.where(sink, nxt_start, s["start"]),
        )

    return lax.while_loop(cond, body, state)["row4col"]


_SINGLE = {flag: _make_single(flag) for flag in (False, True)}

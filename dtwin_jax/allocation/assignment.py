"""Batched, jittable linear sum assignment (exact, shortest augmenting paths).

``linear_sum_assignment`` has the meaning of ``scipy.optimize.linear_sum_assignment``;
``batched_linear_sum_assignment`` solves a whole batch ``cost[..., n, m]`` at once.

Algorithm (Jonker-Volgenant style, written for a batch as the vectorised axis):

1. Orient every problem so that it has ``r = min(n, m)`` rows and ``c = max(n, m)``
   columns. Row reduction gives dual potentials (row ``u_i = min_j C_ij``, column
   ``v_j = 0``); a few vectorised greedy rounds match rows to free columns of zero
   reduced cost. This assigns most rows without any search.
2. One ``lax.while_loop`` whose every iteration performs ONE Dijkstra step on every
   problem of the batch that still has a free row: scan the current row, relax the
   distances of the unscanned columns, settle the nearest column (ties prefer a free
   column). When a free column is settled, the augmenting path is applied in the same
   iteration: every column carries the bit set of the columns on its tree path, so the
   path is read off in one vectorised step instead of a pointer chase. Column
   potentials are then updated exactly as in JV and the next free row starts.

Row potentials are never stored: for an assigned row ``u_i = C_{i, col(i)} - v_{col(i)}``.
No tolerance is used anywhere; with integer-valued costs (below 2**24 in float32) every
operation is exact, and with real costs the result is optimal up to rounding.

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

__all__ = ["batched_linear_sum_assignment", "linear_sum_assignment"]

_GREEDY_ROUNDS = 3


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

    Vmappable: ``jax.vmap(linear_sum_assignment)(cost[B, n, m])`` works; the batched
    entry point below is the same algorithm without the vmap bookkeeping.
    """
    cost = _as_cost(cost, ndim=2)
    if mask is not None:
        mask = _as_mask(mask, cost.shape)
    rows, cols = batched_linear_sum_assignment(
        cost[None], maximize=maximize, mask=None if mask is None else mask[None]
    )
    return rows[0], cols[0]


def batched_linear_sum_assignment(cost, maximize: bool = False, mask=None):
    """Solve ``cost[..., n, m]`` (any leading batch shape) in one vectorised loop.

    Returns ``(row_ind, col_ind)`` of shape ``[..., k]`` with ``k = min(n, m)``, each
    problem's result as in :func:`linear_sum_assignment`.
    """
    cost = _as_cost(cost, ndim=None)
    if mask is not None:
        mask = _as_mask(mask, cost.shape)
    if not isinstance(maximize, bool):
        raise TypeError(f"maximize must be a Python bool, got {type(maximize).__name__}")
    *batch, n, m = cost.shape
    k = min(n, m)
    if k == 0:
        empty = jnp.zeros((*batch, 0), jnp.int32)
        return empty, empty
    flat = cost.reshape(-1, n, m)
    flat_mask = None if mask is None else mask.reshape(-1, n, m)
    rows, cols = _solve(flat, flat_mask, maximize)
    return rows.reshape(*batch, k), cols.reshape(*batch, k)


def _as_cost(cost, ndim):
    if not hasattr(cost, "shape") or not hasattr(cost, "dtype"):
        cost = np.asarray(cost)
    if ndim is not None and cost.ndim != ndim:
        raise ValueError(f"cost must have {ndim} dimensions [n, m], got shape {cost.shape}")
    if cost.ndim < 2:
        raise ValueError(f"cost must have shape [..., n, m], got shape {cost.shape}")
    if not (jnp.issubdtype(cost.dtype, jnp.number) or cost.dtype == bool):
        raise TypeError(f"cost must be a real array, got dtype {cost.dtype}")
    if jnp.issubdtype(cost.dtype, jnp.complexfloating):
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
    _, n, m = cost.shape
    transpose = n > m
    work = _substitute_forbidden(cost, allowed, min(n, m))
    if transpose:
        work = jnp.swapaxes(work, 1, 2)
    col4row = _solve_wide(work)  # [B, r]: column of each row of the wide problem
    r = col4row.shape[1]
    if transpose:
        # wide rows are original columns: sort the pairs by original row
        order = jnp.argsort(col4row, axis=1).astype(jnp.int32)
        row_ind = jnp.take_along_axis(col4row, order, axis=1)
        col_ind = order
    else:
        row_ind = jnp.broadcast_to(jnp.arange(r, dtype=jnp.int32), col4row.shape)
        col_ind = col4row
    ok = allowed[jnp.arange(cost.shape[0])[:, None], row_ind, col_ind]
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
    """Exact assignment for ``cost[B, r, c]`` with ``r <= c``; returns col4row[B, r]."""
    nb, r, c = cost.shape
    dtype = cost.dtype
    # rows of all problems, gathered as contiguous slices during the search
    cost_rows = cost.reshape(nb * r, c)
    row_base = jnp.arange(nb, dtype=jnp.int32) * r
    cost = jnp.transpose(cost, (1, 2, 0))  # [r, c, B]: the batch is the contiguous axis
    cols = jnp.arange(c, dtype=jnp.int32)[:, None]
    rows = jnp.arange(r, dtype=jnp.int32)[:, None]

    # --- initialisation: row reduction (+ column reduction when square), greedy rounds
    red = cost - jnp.min(cost, axis=1, keepdims=True)
    if r == c:
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

    # --- shortest augmenting paths, one Dijkstra step per iteration and problem
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

    state = lax.while_loop(cond, body, state)
    match = state["row4col"][None, :, :] == rows[:, :, None]  # [r, c, B]
    col4row = jnp.sum(jnp.where(match, cols[None], 0), axis=1)
    return col4row.T.astype(jnp.int32)

"""Throughput metrics of ``association-v0`` (cell edge, mean, Jain) over active users."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax.envs.association.physics import top_candidates

#: the masked quantile selects its order statistics in this many min-rounds at most, else sorts
MAX_SELECTION_ROUNDS = 16


def _smallest(x: jax.Array, k: int) -> jax.Array:
    """The ``k`` smallest entries of ``x [..., U]`` in increasing order, ``[..., k]`` (ties
    kept): :func:`~dtwin_jax.envs.association.physics.top_candidates` of ``-x``, ``k`` rounds
    of an argmax, far cheaper than a sort on CPU for a small ``k``."""
    return -top_candidates(-x, k)[0]


def masked_quantile(x: jax.Array, mask: jax.Array, q: float) -> jax.Array:
    """Quantile ``q`` (static) of ``x [..., U]`` over the entries where ``mask``; linear
    interpolation (NumPy's default). 0 when the mask is empty.

    Only the order statistics ``floor(q (n - 1))`` and the next one are needed: for a low
    quantile (the 5th percentile of ``U = 256`` users needs the 14 smallest) they come from
    :func:`_smallest`, otherwise from a sort.
    """
    u = x.shape[-1]
    n = mask.sum(-1)
    rounds = min(int(q * (u - 1)) + 2, u)
    masked = jnp.where(mask, x, jnp.inf)
    if q <= 0.5 and rounds <= MAX_SELECTION_ROUNDS:
        xs = _smallest(masked, rounds)
    else:
        xs = jnp.sort(masked, axis=-1)
    pos = q * jnp.maximum(n - 1, 0).astype(jnp.float32)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, jnp.maximum(n - 1, 0))
    v_lo = jnp.take_along_axis(xs, lo[..., None], axis=-1)[..., 0]
    v_hi = jnp.take_along_axis(xs, hi[..., None], axis=-1)[..., 0]
    out = v_lo + (pos - lo) * (v_hi - v_lo)
    return jnp.where(n > 0, out, 0.0)


def throughput_metrics(rate: jax.Array, active: jax.Array) -> dict:
    """Per-user ``throughput`` (0 for inactive), ``cell_edge`` (5th percentile),
    ``mean_throughput``, ``jain`` and ``num_active`` over the active users of ``rate [..., U]``
    (bit/s)."""
    rate = jnp.where(active, rate, 0.0)
    n = active.sum(-1)
    nf = jnp.maximum(n, 1).astype(jnp.float32)
    total = rate.sum(-1)
    jain = total * total / jnp.maximum(nf * jnp.sum(rate * rate, -1), 1e-30)
    return {
        "throughput": rate,
        "cell_edge": masked_quantile(rate, active, 0.05),
        "mean_throughput": total / nf,
        "jain": jnp.where(n > 0, jain, 0.0),
        "num_active": n.astype(jnp.int32),
    }

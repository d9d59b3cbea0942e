"""Throughput metrics of ``association-v0`` (cell edge, mean, Jain) over active users."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_quantile(x: jax.Array, mask: jax.Array, q: float) -> jax.Array:
    """Quantile ``q`` of ``x [..., U]`` over the entries where ``mask``; linear interpolation
    (NumPy's default). 0 when the mask is empty."""
    n = mask.sum(-1)
    xs = jnp.sort(jnp.where(mask, x, jnp.inf), axis=-1)
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

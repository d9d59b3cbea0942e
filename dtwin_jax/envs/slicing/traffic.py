"""Traffic of ``slicing-v0``: per-slice packet sizes and inter-arrival times.

Each generator maps uniforms ``u`` in ``[0, 1)`` to a variate, so that the random draws of a
decision can be made once and replayed (tests feed the same draws to a NumPy reference).

====== ============================================== =========================================
slice  size (bit)                                     inter-arrival X (s)
====== ============================================== =========================================
VoLTE  ``volte_size_bits`` (40 B)                     ``U(0, volte_gap_max_s)`` (mean 80 ms)
video  ``min(scale * Lomax(a), cap)`` (100 B, 250 B)  ``min(6 ms * Lomax(a), 12.5 ms)``
URLLC  uniform over ``urllc_sizes_bits``              ``Exp(mean 180 ms)``
====== ============================================== =========================================

``Lomax(a)`` is numpy's ``pareto(a)`` as in the authors' simulator (a Pareto of scale 1
shifted to start at 0): ``P(L > x) = (1 + x)^-a``, so ``E[min(s L, c)] =
s / (a - 1) * (1 - (1 + c / s)^(1 - a))`` (6.05 ms and 110.8 B for the defaults).

Chosen: the inter-arrival in slots is ``max(1, ceil(X / slot_s))``: the packet is generated in
the slot in which X has elapsed since the previous one (the authors' countdown adds one more
slot because it decrements after the due check). Arrivals are counted per user in whole slots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax.envs.slicing.types import SlicingParams

VOLTE, VIDEO, URLLC = 0, 1, 2
NUM_SLICES = 3
SLICE_NAMES = ("volte", "video", "urllc")


def per_user(values: jax.Array, slice_id: jax.Array) -> jax.Array:
    """``values [3]`` (one per slice) -> ``[U]``, the value of each user's slice (a select
    chain: cheaper than a gather on CPU)."""
    return jnp.where(slice_id == VOLTE, values[VOLTE],
                     jnp.where(slice_id == VIDEO, values[VIDEO], values[URLLC]))


def lomax(u: jax.Array, shape, scale) -> jax.Array:
    """``scale * Lomax(shape)`` from uniforms ``u`` in [0, 1): ``scale ((1 - u)^(-1/a) - 1)``."""
    return scale * jnp.expm1(-jnp.log1p(-u) / shape)


def gap_seconds(slice_id: jax.Array, u: jax.Array, params: SlicingParams) -> jax.Array:
    """Inter-arrival X (s, f32) of each user's slice from uniforms ``u`` (same shape)."""
    neg_log = -jnp.log1p(-u)  # Exp(1)
    volte = u * params.volte_gap_max_s
    video = jnp.minimum(params.video_gap_scale_s * jnp.expm1(neg_log / params.video_shape),
                        params.video_gap_cap_s)
    urllc = params.urllc_gap_mean_s * neg_log
    return jnp.where(slice_id == VOLTE, volte, jnp.where(slice_id == VIDEO, video, urllc))


def gap_slots(slice_id: jax.Array, u: jax.Array, params: SlicingParams) -> jax.Array:
    """Inter-arrival in whole slots, ``max(1, ceil(X / slot_s))`` (int32; X capped at 2^30
    slots)."""
    slots = jnp.ceil(gap_seconds(slice_id, u, params) / params.slot_s)
    return jnp.clip(slots, 1.0, 2.0**30).astype(jnp.int32)


def packet_bits(slice_id: jax.Array, u: jax.Array, params: SlicingParams) -> jax.Array:
    """Packet size (bit, f32) of each user's slice from uniforms ``u`` (same shape)."""
    video = jnp.minimum(lomax(u, params.video_shape, params.video_size_scale_bits),
                        params.video_size_cap_bits)
    n = params.urllc_sizes_bits.shape[-1]
    pick = jnp.minimum(jnp.floor(u * n), n - 1).astype(jnp.int32)
    urllc = params.urllc_sizes_bits[pick]
    return jnp.where(slice_id == VOLTE, params.volte_size_bits,
                     jnp.where(slice_id == VIDEO, video, urllc))


def draw_slices(key: jax.Array, num_users: int, params: SlicingParams) -> jax.Array:
    """``[U]`` int32 slice of each user, i.i.d. with probabilities ``params.slice_probs``."""
    logits = jnp.log(jnp.maximum(params.slice_probs, 1e-30))
    return jax.random.categorical(key, logits, shape=(num_users,)).astype(jnp.int32)


def draw_positions(key: jax.Array, num_users: int, params: SlicingParams) -> jax.Array:
    """``[U, 2]`` f32 m, uniform in the square ``[-area_half_m, area_half_m]^2``."""
    a = params.area_half_m
    return jax.random.uniform(key, (num_users, 2), jnp.float32, -a, a)

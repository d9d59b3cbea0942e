"""The randomness of ``slicing-v0``: every draw of a decision from one key.

A decision draws two uint32 seed words from its JAX key (:func:`decision_seed`); the draws of
slot t (:func:`draw_slot`) are then a counter-based hash of ``(seed, t, stream, user)``, so a
whole decision can be drawn at once (:func:`draw_decision`, for replay in the tests) or slot by
slot inside the scan, with identical values.

Chosen for speed: the hash is two keyed rounds of the ``lowbias32`` integer mixer (xor-shift /
multiply, a bijection of uint32 with full avalanche), about 10x cheaper on CPU than drawing with
threefry in every slot; the tests check the moments and the independence of the variates it
yields. Uniforms keep 24 bits; normals are ``sqrt(2) erfinv(v)`` of a uniform v on the odd multiples
of 2^-23 in (-1, 1) (finite, |z| < 5.5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dtwin_jax.envs.slicing import traffic
from dtwin_jax.envs.slicing.types import SlicingParams, SlotDraws

NUM_STREAMS = 3  # shadowing, inter-arrival, packet size
_M1, _M2 = 0x7FEB352D, 0x846CA68B
_TWO_M24 = 2.0**-24
_TWO_M23 = 2.0**-23


def _mix(x: jax.Array) -> jax.Array:
    """``lowbias32``: a bijective uint32 mixer."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_M1)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(_M2)
    return x ^ (x >> 16)


def hash_bits(seed: jax.Array, counter: jax.Array) -> jax.Array:
    """uint32 random words of ``counter`` (uint32, any shape) under ``seed [2]`` uint32."""
    return _mix(_mix(counter ^ seed[0]) ^ seed[1])


def decision_seed(key: jax.Array) -> jax.Array:
    """``[2]`` uint32 seed of a decision's draws from a JAX key."""
    return jax.random.bits(key, (2,), jnp.uint32)


def draw_slot(seed: jax.Array, t: jax.Array, slice_id: jax.Array,
              params: SlicingParams) -> SlotDraws:
    """The draws of slot ``t`` (int32 scalar) for users of slices ``slice_id [U]``."""
    num_users = slice_id.shape[0]
    base = t.astype(jnp.uint32) * jnp.uint32(NUM_STREAMS * num_users)
    counter = base + jnp.arange(NUM_STREAMS * num_users, dtype=jnp.uint32)
    top = (hash_bits(seed, counter) >> 8).reshape(NUM_STREAMS, num_users)  # 24 bits
    u = top.astype(jnp.float32) * _TWO_M24  # [0, 1)
    odd = 2.0 * (top[0] >> 1).astype(jnp.float32) + 1.0  # exact: < 2^24
    open_u = odd * _TWO_M23 - 1.0  # in [-1 + 2^-23, 1 - 2^-23]
    z = 1.4142135623730951 * lax.erf_inv(open_u)
    return SlotDraws(
        shadow_db=params.shadow_sigma_db * z,
        gap_slots=traffic.gap_slots(slice_id, u[1], params),
        size_bits=traffic.packet_bits(slice_id, u[2], params),
    )


def draw_decision(seed: jax.Array, num_slots: int, slice_id: jax.Array,
                  params: SlicingParams) -> SlotDraws:
    """All draws of a decision (``[S, U]`` leaves), equal to the slot-by-slot draws."""
    ts = jnp.arange(num_slots, dtype=jnp.int32)
    return jax.vmap(draw_slot, in_axes=(None, 0, None, None))(seed, ts, slice_id, params)

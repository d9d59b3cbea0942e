"""Per-BS Hungarian RB allocation: the iterative scheme of the DNT paper (Yu et al. 2025).

Given which users every BS chose to serve, BS ``0, 1, ..., M-1`` in turn give their free
RBs to their chosen users by a maximum-rate bipartite matching (an exact assignment, see
:func:`dtwin_jax.allocation.linear_sum_assignment`). BS ``m`` evaluates each (user, RB)
rate with the interference of the BSs ``0..m-1`` that allocated before it, on that RB.

Invariants of the result ``alloc[U, M, R]`` (0/1): each RB of a BS goes to at most one user;
each user gets at most one RB per BS; only users chosen by a BS get its RBs; a reserved RB
carries no user. A user chosen by several BSs is served by each of them (one RB each) and
its rate is the sum: the paper penalises such overlaps in the reward, not here. When a BS
chose more users than it has free RBs, the matching leaves the weakest ones unserved.

Twin update: with ``reserve_update[m]`` True, BS ``m`` first reserves one RB for its
uplink to the cloud server - the RB with the largest BS-to-cloud gain (chosen: simplest
reading of the paper) - and allocates the others. The update's rate is interference-free
(``B log2(1 + P g_up / noise)``, chosen).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax import lax

from dtwin_jax.allocation.assignment import linear_sum_assignment
from dtwin_jax.radio.link import rb_sinr, shannon_rate

__all__ = ["RBAllocation", "iterative_rb_allocation"]


@struct.dataclass
class RBAllocation:
    """Result of :func:`iterative_rb_allocation` (shapes for U users, M BSs, R RBs).

    alloc: [U, M, R] float32 0/1, user u served by BS m on RB r.
    sinr: [U, M, R] float32 SINR of each allocated link with the interference of ALL BSs'
        final allocations on that RB (0 where not allocated).
    rate: [U] float32 user rate (bit/s when bandwidth is in Hz): sum over its links.
    reserved: [M, R] bool, the RB each BS reserved for its twin update (if any).
    update_rate: [M] float32 uplink rate of that update (0 for BSs that send none).
    """

    alloc: jax.Array
    sinr: jax.Array
    rate: jax.Array
    reserved: jax.Array
    update_rate: jax.Array


def iterative_rb_allocation(
    gain,
    serve,
    tx_power_w=1.0,
    noise_w=1e-5,
    bandwidth=1.0,
    reserve_update=None,
    uplink_gain=None,
) -> RBAllocation:
    """Allocate RBs BS by BS with maximum-rate matchings (a ``lax.scan`` over BSs).

    Args:
      gain: [U, M, R] channel power gain of user u from BS m on RB r.
      serve: [M, U] bool, users chosen by each BS (inactive users: all False).
      tx_power_w: [] or [M] transmit power per RB (W).
      noise_w: [] noise power per RB (W), e.g. ``N0 * B``.
      bandwidth: [] bandwidth of one RB (Hz; the paper uses B = 1).
      reserve_update: optional [M] bool, BSs that reserve an RB for a twin update.
      uplink_gain: [M, R] BS-to-cloud gain per RB; required with ``reserve_update``.

    Returns:
      :class:`RBAllocation`. Jittable and vmappable over twins.
    """
    gain = jnp.asarray(gain, jnp.float32)
    if gain.ndim != 3:
        raise ValueError(f"gain must have shape [U, M, R], got shape {gain.shape}")
    num_u, num_m, num_r = gain.shape
    serve = jnp.asarray(serve, bool)
    if serve.shape != (num_m, num_u):
        raise ValueError(f"serve has shape {serve.shape}; expected (M, U) = {(num_m, num_u)}")
    power = jnp.broadcast_to(jnp.asarray(tx_power_w, jnp.float32), (num_m,))
    noise = jnp.maximum(jnp.asarray(noise_w, jnp.float32), 1e-30)
    if reserve_update is None:
        reserved = jnp.zeros((num_m, num_r), bool)
        update_rate = jnp.zeros((num_m,), jnp.float32)
    else:
        if uplink_gain is None:
            raise ValueError("uplink_gain [M, R] is required when reserve_update is given")
        uplink_gain = jnp.asarray(uplink_gain, jnp.float32)
        if uplink_gain.shape != (num_m, num_r):
            raise ValueError(
                f"uplink_gain has shape {uplink_gain.shape}; expected (M, R) = {(num_m, num_r)}"
            )
        reserve = jnp.asarray(reserve_update, bool)
        if reserve.shape != (num_m,):
            raise ValueError(f"reserve_update has shape {reserve.shape}; expected ({num_m},)")
        best = jnp.argmax(uplink_gain, axis=1)
        reserved = reserve[:, None] & (jnp.arange(num_r)[None, :] == best[:, None])
        g_up = jnp.max(uplink_gain, axis=1)
        update_rate = jnp.where(reserve, shannon_rate(bandwidth, power * g_up / noise), 0.0)

    def allocate(interf, xs):
        g_m, p_m, serve_m, reserved_m = xs  # [U, R], [], [U], [R]
        rate = shannon_rate(bandwidth, p_m * g_m / (interf + noise))
        allowed = serve_m[:, None] & ~reserved_m[None, :]
        users, rbs = linear_sum_assignment(rate, maximize=True, mask=allowed)
        alloc_m = jnp.zeros((num_u, num_r), jnp.float32)
        alloc_m = alloc_m.at[users, jnp.where(rbs >= 0, rbs, num_r)].set(1.0, mode="drop")
        tx_m = jnp.max(alloc_m, axis=0)  # [R] does BS m transmit on r
        return interf + p_m * g_m * tx_m[None, :], alloc_m

    xs = (jnp.moveaxis(gain, 1, 0), power, serve, reserved)
    _, alloc = lax.scan(allocate, jnp.zeros((num_u, num_r), jnp.float32), xs)
    alloc = jnp.moveaxis(alloc, 0, 1)  # [U, M, R]

    # final SINR: interference from every other BS transmitting on the same RB
    _, _, sinr = rb_sinr(power[None, :, None] * gain, alloc, noise)
    rate = jnp.sum(alloc * shannon_rate(bandwidth, sinr), axis=(1, 2))
    return RBAllocation(alloc, sinr, rate, reserved, update_rate)

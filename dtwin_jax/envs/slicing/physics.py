"""Packet-level physics of ``slicing-v0``: one decision window of S slots as one ``lax.scan``.

The randomness of a slot is :func:`dtwin_jax.envs.slicing.draws.draw_slot` (``[U]``
shadowing, next inter-arrival, packet size); everything else (:func:`run_slot`) is
deterministic, so a decision can be replayed from
:func:`~dtwin_jax.envs.slicing.draws.draw_decision` (the tests feed those draws to a NumPy
reference).

Queues are FIFO rings ``[Q, U]`` (queue place first, like the authors' simulator): a user's
m-th packet of the window sits in place ``m mod Q``, so the head is ``delivered mod Q``, the
tail ``arrived mod Q`` and nothing is ever shifted. Order of one slot t:

1. **Arrivals.** Each user's countdown ``timer`` drops by one; a user whose timer is <= 0
   generates a packet if its queue has room (size ``size_bits[t]``, next timer
   ``gap_slots[t]``); with a full queue the packet waits (``blocked``) and is generated in
   the first slot with room (as the authors' simulator: no packet is lost at arrival).
2. **Round robin per slice** (:func:`round_robin`) among users with a queued packet: slice k
   has ``R_k = floor(split_k / 180 kHz)`` RBs; each of its n_k active users gets
   ``R_k // n_k`` RBs and the ``R_k mod n_k`` remaining RBs go one each to the next active users
   in index order from the slice's pointer (wrapping), which then moves past the last one
   served. Pointers restart at user 0 each decision.
3. **Rate** (:func:`link_rate`): ``b = RBs * 180 kHz``,
   ``SNR = 10^((P + G - PL - shadow - N0) / 10) / b`` (every scheduled user sees the full BS
   power, as in the simulator), ``rate = b * log10(1 + SNR) * rate_factor``.
4. **Service**: ``rate * slot_s`` bits drain the queue front to back (chosen: a packet that
   empties passes its unused bits to the next one; the authors' code subtracts the packet's
   bits from the rate instead).
5. **SLA** of each packet delivered in this slot, with latency ``L`` = slots it spent queued
   including this one (chosen as the authors' simulator): satisfied iff ``L * slot_s <
   sla_delay`` and the packet's rate >= ``sla_rate``, where the packet's rate is the user's
   link rate if ``L == 1`` and ``size / (L * slot_s)`` otherwise.
6. **SE**: ``sum_u rate_u / total bandwidth`` (bit/s/Hz, counted whether or not the bits are
   used, as the simulator), averaged over the slots of the window.

At the end of the window the packets still queued are dropped (queues cleared between
decisions); ``arrived = delivered + dropped`` per user.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax.envs.slicing.traffic import NUM_SLICES, per_user
from dtwin_jax.envs.slicing.types import SlicingParams, SlicingState, SlotDraws, WindowResult
from dtwin_jax.radio.pathloss import slicing_pathloss

RB_HZ = 180e3
"""Bandwidth of one resource block (Hz)."""

_BITS = 10  # round_robin packs three per-slice counters of 10 bits into one int32
MAX_USERS = 2**_BITS - 1
_LN10 = 2.302585092994046


def pathloss_db(pos: jax.Array) -> jax.Array:
    """``[U]`` f32 dB: ``145.4 + 37.5 log10(d_km)`` from positions ``pos [U, 2]`` (m, BS at
    the origin; d floored at 1 m)."""
    d_m = jnp.sqrt(jnp.sum(pos * pos, axis=-1))
    return slicing_pathloss(d_m * 1e-3)


def per_slice(x: jax.Array, slice_id: jax.Array) -> jax.Array:
    """Sum ``x [..., U]`` over the users of each slice -> ``[..., 3]``."""
    onehot = slice_id[:, None] == jnp.arange(NUM_SLICES)
    return jnp.sum(jnp.where(onehot, x[..., :, None], 0), axis=-2)


def round_robin(active: jax.Array, slice_id: jax.Array, rbs: jax.Array, ptr: jax.Array):
    """RBs of each user in one slot, and the slices' next round-robin pointers.

    Args:
        active: [U] bool, users with a queued packet.
        slice_id: [U] int32 in {0, 1, 2}.
        rbs: [3] int32, RBs of each slice.
        ptr: [3] int32 in [0, U], first user index in line for a remainder RB.

    Returns ``(rbs_user [U] int32, ptr [3] int32)`` (module docstring, step 2).
    """
    num_users = active.shape[0]
    shift = _BITS * slice_id
    packed = active.astype(jnp.int32) << shift  # one cumsum counts all three slices
    incl = jnp.cumsum(packed)
    total = incl[-1]
    excl = jnp.concatenate([incl - packed, total[None]])  # [U + 1]
    k = jnp.arange(NUM_SLICES)
    mask = (1 << _BITS) - 1
    n_k = (total >> (_BITS * k)) & mask
    before_k = (excl[ptr] >> (_BITS * k)) & mask  # active users of slice k before its ptr
    base_k = rbs // jnp.maximum(n_k, 1)
    rem_k = jnp.where(n_k > 0, rbs - base_k * n_k, 0)

    n_u = jnp.maximum(per_user(n_k, slice_id), 1)
    mine = (excl[:-1] >> shift) & mask
    rank = jnp.remainder(mine - per_user(before_k, slice_id), n_u)
    rem_u = per_user(rem_k, slice_id)
    extra = rank < rem_u
    rbs_user = jnp.where(active, per_user(base_k, slice_id) + extra, 0)

    last = active & (rank == rem_u - 1)
    after = jnp.where(last, jnp.arange(1, num_users + 1), 0)
    new_ptr = jnp.max(jnp.where(slice_id[:, None] == k, after[:, None], 0), axis=0)
    return rbs_user.astype(jnp.int32), jnp.where(rem_k > 0, new_ptr, ptr).astype(jnp.int32)


def link_rate(rbs_user: jax.Array, path_db: jax.Array, shadow_db: jax.Array,
              params: SlicingParams) -> jax.Array:
    """``[U]`` f32 bit/s, ``b log10(1 + SNR) * rate_factor`` (module docstring, step 3); 0 for
    users without RBs. Computed in the log domain (no overflow for any SNR)."""
    bw = rbs_user.astype(jnp.float32) * RB_HZ
    snr_hz_db = params.tx_power_dbm + params.ue_gain_db - path_db - shadow_db - params.noise_dbm_hz
    snr_db = snr_hz_db - 10.0 * jnp.log10(jnp.maximum(bw, 1.0))
    log10_1p = jnp.logaddexp(0.0, snr_db * (_LN10 / 10.0)) / _LN10
    return jnp.where(rbs_user > 0, bw * log10_1p * params.rate_factor, 0.0)


@struct.dataclass
class _Carry:
    """Scan carry of one window (one twin): ring queues ``[Q, U]`` (rem, size f32 bit; born
    int32 slot of arrival), ``timer [U]``, ``ptr [3]``, per-user counters ``[U]`` int32 and
    ``se_sum`` f32. Queued packets: ``arrived - delivered``."""

    rem: jax.Array
    size: jax.Array
    born: jax.Array
    timer: jax.Array
    ptr: jax.Array
    arrived: jax.Array
    delivered: jax.Array
    satisfied: jax.Array
    blocked: jax.Array
    se_sum: jax.Array


def _serve(rem: jax.Array, head: jax.Array, n: jax.Array, cap: jax.Array):
    """Drain ``cap [U]`` bits from the ring queues ``rem [Q, U]`` (``head [U]`` place of the
    oldest packet, ``n [U]`` packets queued, empty places hold 0) in FIFO order.

    Returns ``(new_rem [Q, U], done [Q, U] bool)``: packets fully sent have ``done``.
    """
    q = rem.shape[0]
    prefix, acc = [], jnp.zeros_like(cap)
    for p in range(q):  # physical prefix sums
        acc = acc + rem[p]
        prefix.append(acc)
    total = acc
    before_head = jnp.zeros_like(cap)
    for p in range(q - 1):
        before_head = jnp.where(head == p + 1, prefix[p], before_head)
    new_rem, done = [], []
    for p in range(q):
        wrapped = p < head
        cum = prefix[p] - before_head + jnp.where(wrapped, total, 0.0)  # FIFO order sum
        logical = jnp.where(wrapped, p - head + q, p - head)
        queued = logical < n
        new_rem.append(jnp.where(queued, jnp.clip(cum - cap, 0.0, rem[p]), 0.0))
        done.append(queued & (cum <= cap))
    return jnp.stack(new_rem), jnp.stack(done)


def run_slot(carry: _Carry, t: jax.Array, draws: SlotDraws, slice_id: jax.Array,
             path_db: jax.Array, rbs: jax.Array, total_bw_hz: float,
             params: SlicingParams) -> _Carry:
    """One slot t (steps 1-6 of the module docstring) for one twin."""
    q = carry.rem.shape[0]
    places = jnp.arange(q)[:, None]  # [Q, 1]
    # 1. arrivals
    timer = carry.timer - 1
    due = timer <= 0
    room = carry.arrived - carry.delivered < q
    arrive = due & room
    at = arrive[None, :] & (places == carry.arrived[None, :] % q)
    rem = jnp.where(at, draws.size_bits[None, :], carry.rem)
    size = jnp.where(at, draws.size_bits[None, :], carry.size)
    born = jnp.where(at, t, carry.born)
    arrived = carry.arrived + arrive
    timer = jnp.where(arrive, draws.gap_slots, timer)
    n = arrived - carry.delivered
    # 2-3. scheduling and rates
    rbs_user, ptr = round_robin(n > 0, slice_id, rbs, carry.ptr)
    rate = link_rate(rbs_user, path_db, draws.shadow_db, params)
    # 4. service, oldest packet first
    new_rem, done = _serve(rem, carry.delivered % q, n, rate * params.slot_s)
    done = done & (rbs_user > 0)
    # 5. SLA of the packets delivered now
    lat_slots = t - born + 1  # [Q, U]
    lat = lat_slots.astype(jnp.float32) * params.slot_s  # s
    sla_rate = per_user(params.sla_rate_bps, slice_id)
    fast = jnp.where(lat_slots == 1, rate >= sla_rate, size >= sla_rate * lat)
    ok = done & fast & (lat < per_user(params.sla_delay_s, slice_id))
    return _Carry(
        rem=jnp.where(done, 0.0, new_rem), size=size, born=born, timer=timer, ptr=ptr,
        arrived=arrived,
        delivered=carry.delivered + jnp.sum(done, axis=0, dtype=jnp.int32),
        satisfied=carry.satisfied + jnp.sum(ok, axis=0, dtype=jnp.int32),
        blocked=carry.blocked + (due & ~room),
        se_sum=carry.se_sum + jnp.sum(rate) / total_bw_hz,  # 6. SE
    )


def simulate(state: SlicingState, rbs: jax.Array, xs, draw_fn, queue_len: int,
             total_bw_hz: float, params: SlicingParams, unroll: int = 1) -> WindowResult:
    """Run one decision window from empty queues.

    Args:
        state: the twin's state (users, slices, pathloss, arrival timers).
        rbs: [3] int32, RBs of each slice for this decision.
        xs: per-slot scan inputs with a leading ``[S]`` axis: slot indices ``arange(S)``
            or replayed :class:`SlotDraws`.
        draw_fn: ``(t, x) -> SlotDraws``: :func:`~dtwin_jax.envs.slicing.draws.draw_slot`
            bound to a seed, the slices and the params; ``lambda t, x: x`` for replay.
        queue_len: Q.
        total_bw_hz: total bandwidth (the denominator of the SE).
        unroll: ``lax.scan`` unroll factor (speed only).
    """
    num_users = state.slice_id.shape[0]
    zq_f = jnp.zeros((queue_len, num_users), jnp.float32)
    zu = jnp.zeros(num_users, jnp.int32)
    init = _Carry(rem=zq_f, size=zq_f, born=jnp.zeros((queue_len, num_users), jnp.int32),
                  timer=state.timer, ptr=jnp.zeros(NUM_SLICES, jnp.int32),
                  arrived=zu, delivered=zu, satisfied=zu, blocked=zu,
                  se_sum=jnp.float32(0.0))
    num_slots = jax.tree.leaves(xs)[0].shape[0]

    def body(carry, x):
        c, t = carry
        c = run_slot(c, t, draw_fn(t, x), state.slice_id, state.pathloss_db, rbs,
                     total_bw_hz, params)
        return (c, t + 1), None

    (c, _), _ = jax.lax.scan(body, (init, jnp.int32(0)), xs, unroll=unroll)
    return WindowResult(arrived=c.arrived, delivered=c.delivered, satisfied=c.satisfied,
                        blocked=c.blocked, dropped=c.arrived - c.delivered,
                        se=c.se_sum / num_slots, timer=c.timer)

"""NumPy peers of ``slicing-v0``'s decision window for ``bench_slicing.py``.

The same packet simulation as :mod:`dtwin_jax.envs.slicing.physics` (rules in its module
docstring), written the NumPy way: a Python loop over the slots, every slot vectorised over
the users (``[B, Q, U]`` arrays). :func:`run_window` takes a batch of B twins:

* peer (a), "as the authors' simulator is": one twin at a time (B = 1, a Python loop over
  twins around it), like the GAN-DDQN authors' ``cellular_env``;
* peer (b): all twins at once (batched over twins, still a loop over slots).

Randomness: :class:`RngSource` draws with a NumPy ``Generator`` (shadowing for every user each
slot, inter-arrival and size only for the users that generate a packet, as the authors do);
:class:`ReplaySource` replays ``draw_decision`` arrays, so the bench can check that the peers
compute exactly what the JAX env computes before timing them.
"""

from __future__ import annotations

import numpy as np

RB_HZ = 180e3


class ReplaySource:
    """Draws from arrays ``shadow_db``, ``gap_slots``, ``size_bits`` of shape [B, S, U]."""

    def __init__(self, draws: dict):
        self.d = draws

    def shadow(self, t):
        return self.d["shadow_db"][:, t]

    def arrivals(self, t, b, u, slice_id):
        return self.d["gap_slots"][b, t, u], self.d["size_bits"][b, t, u]


class RngSource:
    """Draws with ``numpy.random.Generator`` under params ``p`` (dict of floats/arrays)."""

    def __init__(self, rng: np.random.Generator, p: dict, num_twins: int, num_users: int):
        self.rng, self.p, self.shape = rng, p, (num_twins, num_users)

    def shadow(self, t):
        return self.p["shadow_sigma_db"] * self.rng.standard_normal(self.shape, np.float32)

    def arrivals(self, t, b, u, slice_id):
        p, n = self.p, len(b)
        ug, us = self.rng.random(n, np.float32), self.rng.random(n, np.float32)
        s = slice_id[b, u]
        e = -np.log1p(-ug)
        gap = np.where(s == 0, ug * p["volte_gap_max_s"],
                       np.where(s == 1, np.minimum(p["video_gap_scale_s"]
                                                   * np.expm1(e / p["video_shape"]),
                                                   p["video_gap_cap_s"]),
                                p["urllc_gap_mean_s"] * e))
        gap_slots = np.maximum(1, np.ceil(gap / p["slot_s"])).astype(np.int32)
        video = np.minimum(p["video_size_scale_bits"] * np.expm1(-np.log1p(-us)
                                                                 / p["video_shape"]),
                           p["video_size_cap_bits"])
        sizes = np.asarray(p["urllc_sizes_bits"])
        urllc = sizes[np.minimum((us * len(sizes)).astype(np.int64), len(sizes) - 1)]
        size = np.where(s == 0, p["volte_size_bits"], np.where(s == 1, video, urllc))
        return gap_slots, size.astype(np.float32)


def _round_robin(active, slice_id, rbs, ptr):
    """``rbs_user [B, U]`` and the new pointers ``[B, 3]`` (module docstring of physics)."""
    nb, nu = active.shape
    rbs_user = np.zeros((nb, nu), np.int64)
    ptr = ptr.copy()
    rows = np.arange(nb)
    for k in range(3):
        act = active & (slice_id == k)
        n = act.sum(1)
        base = rbs[:, k] // np.maximum(n, 1)
        extra = np.where(n > 0, rbs[:, k] - base * n, 0)
        cum = np.cumsum(act, axis=1)
        excl = np.concatenate([cum - act, cum[:, -1:]], axis=1)
        before = excl[rows, ptr[:, k]]
        rank = (excl[:, :-1] - before[:, None]) % np.maximum(n, 1)[:, None]
        rbs_user += np.where(act, base[:, None] + (rank < extra[:, None]), 0)
        last = act & (rank == extra[:, None] - 1)
        ptr[:, k] = np.where(extra > 0, np.argmax(last, axis=1) + 1, ptr[:, k])
    return rbs_user, ptr


def run_window(slice_id, pathloss_db, timer, rbs, p, source, num_slots, queue_len,
               total_bw_hz):
    """One decision window of B twins from empty queues.

    Args: ``slice_id``, ``pathloss_db``, ``timer`` [B, U]; ``rbs`` [B, 3]; ``p`` params dict;
    ``source`` a draw source; S, Q, total bandwidth. Returns per-user counters [B, U]
    (``arrived``, ``delivered``, ``satisfied``, ``blocked``, ``dropped``), ``timer`` [B, U]
    and ``se`` [B].
    """
    nb, nu = slice_id.shape
    q, slot = queue_len, np.float32(p["slot_s"])
    rem = np.zeros((nb, q, nu), np.float32)
    size = np.zeros((nb, q, nu), np.float32)
    born = np.zeros((nb, q, nu), np.int64)
    timer = timer.astype(np.int64).copy()
    ptr = np.zeros((nb, 3), np.int64)
    arrived, delivered, satisfied, blocked = (np.zeros((nb, nu), np.int64) for _ in range(4))
    se = np.zeros(nb)
    sla_rate = np.asarray(p["sla_rate_bps"], np.float32)[slice_id]
    sla_delay = np.asarray(p["sla_delay_s"], np.float32)[slice_id]
    rx_db = np.float32(p["tx_power_dbm"] + p["ue_gain_db"] - p["noise_dbm_hz"]) - pathloss_db
    bb, uu = np.meshgrid(np.arange(nb), np.arange(nu), indexing="ij")
    for t in range(num_slots):
        timer -= 1  # 1. arrivals
        due = timer <= 0
        room = arrived - delivered < q
        b, u = np.nonzero(due & room)
        if len(b):
            gap, bits = source.arrivals(t, b, u, slice_id)
            place = arrived[b, u] % q
            rem[b, place, u] = bits
            size[b, place, u] = bits
            born[b, place, u] = t
            timer[b, u] = gap
            arrived[b, u] += 1
        blocked += due & ~room
        n = arrived - delivered
        rbs_user, ptr = _round_robin(n > 0, slice_id, rbs, ptr)  # 2. round robin
        bw = (rbs_user * RB_HZ).astype(np.float32)  # 3. rate
        snr_db = rx_db - source.shadow(t) - 10.0 * np.log10(np.maximum(bw, 1.0))
        rate = np.where(rbs_user > 0, bw * np.logaddexp(0.0, snr_db * (np.log(10) / 10))
                        / np.log(10) * p["rate_factor"], 0.0).astype(np.float32)
        cap = rate * slot  # 4. service, oldest first
        head = delivered % q
        cum = np.zeros((nb, nu), np.float32)
        done_n = np.zeros((nb, nu), np.int64)
        for j in range(q):
            place = (head + j) % q
            r = rem[bb, place, uu]
            cum = cum + r
            queued = j < n
            done = queued & (cum <= cap) & (rbs_user > 0)
            rem[bb, place, uu] = np.where(done, 0.0, np.where(queued, np.clip(cum - cap, 0, r), r))
            lat = t - born[bb, place, uu] + 1  # 5. SLA
            lat_s = lat.astype(np.float32) * slot
            fast = np.where(lat == 1, rate >= sla_rate, size[bb, place, uu] >= sla_rate * lat_s)
            satisfied += done & fast & (lat_s < sla_delay)
            done_n += done
        delivered += done_n
        se += rate.sum(1) / total_bw_hz  # 6. SE
    return {"arrived": arrived, "delivered": delivered, "satisfied": satisfied,
            "blocked": blocked, "dropped": arrived - delivered, "timer": timer,
            "se": se / num_slots}

"""A plain NumPy/Python reference of one ``slicing-v0`` decision window, for the tests.

Written for clarity, not speed: Python lists as FIFO queues, a loop over users in every slot,
float64 arithmetic. It replays the draws of ``dtwin_jax.envs.slicing.draws.draw_decision``
and follows the rules of ``dtwin_jax.envs.slicing.physics`` (module docstring) step by step.
"""

from __future__ import annotations

import math

import numpy as np

RB_HZ = 180e3


def rr_order(users: list[int], ptr: int) -> list[int]:
    """``users`` (ascending) in round-robin order: indices >= ptr first, then the rest."""
    return [u for u in users if u >= ptr] + [u for u in users if u < ptr]


def run_window(slice_id, pathloss_db, timer, rbs, draws, params, queue_len, total_bw_hz):
    """One window from empty queues.

    Args:
        slice_id, pathloss_db, timer: [U] arrays of the state.
        rbs: [3] RBs per slice.
        draws: dict of ``shadow_db``, ``gap_slots``, ``size_bits``, each [S, U].
        params: dict of the ``SlicingParams`` fields (floats / lists).
        queue_len: Q; total_bw_hz: SE denominator.

    Returns a dict of per-user ``arrived``, ``delivered``, ``satisfied``, ``blocked``,
    ``dropped``, ``timer`` (int arrays) and ``se`` (float).
    """
    slice_id = [int(s) for s in slice_id]
    num_slots, num_users = np.shape(draws["shadow_db"])
    slot = float(params["slot_s"])
    queues = [[] for _ in range(num_users)]  # packets: [remaining bits, size, born slot]
    timer = [int(x) for x in timer]
    ptr = [0, 0, 0]
    counts = {k: np.zeros(num_users, np.int64)
              for k in ("arrived", "delivered", "satisfied", "blocked")}
    se_sum = 0.0
    for t in range(num_slots):
        for u in range(num_users):  # 1. arrivals
            timer[u] -= 1
            if timer[u] <= 0:
                if len(queues[u]) < queue_len:
                    size = float(draws["size_bits"][t, u])
                    queues[u].append([size, size, t])
                    timer[u] = int(draws["gap_slots"][t, u])
                    counts["arrived"][u] += 1
                else:
                    counts["blocked"][u] += 1
        user_rbs = [0] * num_users  # 2. round robin per slice
        for k in range(3):
            active = [u for u in range(num_users) if slice_id[u] == k and queues[u]]
            if not active:
                continue
            base, extra = divmod(int(rbs[k]), len(active))
            order = rr_order(active, ptr[k])
            for i, u in enumerate(order):
                user_rbs[u] = base + (1 if i < extra else 0)
            if extra > 0:
                ptr[k] = order[extra - 1] + 1
        slot_rate = 0.0
        for u in range(num_users):
            if user_rbs[u] == 0:
                continue
            bw = user_rbs[u] * RB_HZ  # 3. rate
            snr_db = (params["tx_power_dbm"] + params["ue_gain_db"] - pathloss_db[u]
                      - draws["shadow_db"][t, u] - params["noise_dbm_hz"]
                      - 10.0 * math.log10(bw))
            rate = bw * math.log10(1.0 + 10.0 ** (snr_db / 10.0)) * params["rate_factor"]
            slot_rate += rate
            cap, cum, kept = rate * slot, 0.0, []  # 4. service
            for pkt in queues[u]:
                cum += pkt[0]
                if cum <= cap and not kept:
                    counts["delivered"][u] += 1
                    lat = t - pkt[2] + 1  # 5. SLA
                    sla_rate = params["sla_rate_bps"][slice_id[u]]
                    fast = rate >= sla_rate if lat == 1 else pkt[1] >= sla_rate * (lat * slot)
                    if fast and lat * slot < params["sla_delay_s"][slice_id[u]]:
                        counts["satisfied"][u] += 1
                else:
                    if not kept:
                        pkt[0] = min(max(cum - cap, 0.0), pkt[0])
                    kept.append(pkt)
            queues[u] = kept
        se_sum += slot_rate / total_bw_hz  # 6. SE
    out = dict(counts)
    out["dropped"] = np.array([len(q) for q in queues])
    out["timer"] = np.array(timer)
    out["se"] = se_sum / num_slots
    return out

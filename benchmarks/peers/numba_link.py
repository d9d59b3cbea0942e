"""Fused-loop numba peer of the link benchmark (the practical CPU limit).

One compiled, parallel loop over twins computes pathloss, received power and per-RB SINR
without materialising any intermediate larger than one twin's [B, R] block. numba is an
optional dependency (extra ``bench``); ``available()`` says whether it can be used.
"""

from __future__ import annotations

import math

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only without the extra
    numba = None

C = 3.0e8


def available() -> bool:
    """Whether numba is installed."""
    return numba is not None


def _kernel(ue_xy, bs_xy, is_los, shadow_n, fading, alloc, out, fc_ghz, h_bs, h_ut,
            tx_dbm, noise_w, sigma_los, sigma_nlos):
    n_tw, n_u, n_b, n_r = fading.shape
    log_fc = math.log10(fc_ghz)
    d_bp = 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / C
    dh = h_bs - h_ut
    far_off = 9.0 * math.log10(d_bp * d_bp + dh * dh)
    for n in numba.prange(n_tw):
        base = np.empty((n_u, n_b), np.float32)
        for u in range(n_u):
            for b in range(n_b):
                dx = ue_xy[n, u, 0] - bs_xy[n, b, 0]
                dy = ue_xy[n, u, 1] - bs_xy[n, b, 1]
                d2 = math.sqrt(dx * dx + dy * dy)
                d3 = min(max(math.sqrt(d2 * d2 + dh * dh), 1.0), 1e7)
                log_d = math.log10(d3)
                if d2 <= d_bp:
                    pl = 28.0 + 22.0 * log_d + 20.0 * log_fc
                else:
                    pl = 28.0 + 40.0 * log_d + 20.0 * log_fc - far_off
                if is_los[n, u, b]:
                    sig = sigma_los
                else:
                    pl = max(pl, 13.54 + 39.08 * log_d + 20.0 * log_fc - 0.6 * (h_ut - 1.5))
                    sig = sigma_nlos
                base[u, b] = 10.0 ** ((tx_dbm - 30.0 - pl - sig * shadow_n[n, u, b]) / 10.0)
        tx = np.zeros((n_b, n_r), np.float32)
        for u in range(n_u):
            for b in range(n_b):
                for r in range(n_r):
                    tx[b, r] += alloc[n, u, b, r]
        # float64 accumulators: total - own stays accurate next to a dominant own term
        txrx = np.empty((n_b, n_r), np.float64)
        total = np.empty(n_r, np.float64)
        for u in range(n_u):
            total[:] = 0.0
            for b in range(n_b):
                for r in range(n_r):
                    v = tx[b, r] * base[u, b] * fading[n, u, b, r]
                    txrx[b, r] = v
                    total[r] += v
            for b in range(n_b):
                for r in range(n_r):
                    rx = base[u, b] * fading[n, u, b, r]
                    interference = max(total[r] - txrx[b, r], 0.0)
                    sinr = alloc[n, u, b, r] * rx / max(interference + noise_w, 1e-30)
                    out[n, u, b, r] = min(sinr, 1e15)


_compiled = None


def link_sinr(ue_xy, bs_xy, is_los, shadow_n, fading, alloc, p):
    """SINR [N, U, B, R] (float32); same inputs as ``numpy_link.link_sinr``."""
    global _compiled
    if numba is None:
        raise RuntimeError("numba is not installed; pip install 'dtwin_jax[bench]'")
    if _compiled is None:
        _compiled = numba.njit(parallel=True, fastmath=True)(_kernel)
    out = np.empty(fading.shape, np.float32)
    _compiled(ue_xy, bs_xy, is_los, shadow_n, fading, alloc, out, float(p["fc_ghz"]),
              float(p["h_bs"]), float(p["h_ut"]), float(p["tx_dbm_per_rb"]),
              float(p["noise_w_per_rb"]), float(p["sigma_los"]), float(p["sigma_nlos"]))
    return out

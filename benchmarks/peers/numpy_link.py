"""Batched NumPy peer of the link benchmark: positions -> 38.901 UMa pathloss -> per-RB SINR.

The same math as ``benchmarks/bench_link.py``'s JAX pipeline, written independently with
vectorised float32 NumPy over a batch of twins (every intermediate is materialised).
"""

from __future__ import annotations

import numpy as np

C = 3.0e8


def uma_pathloss(d_2d, d_3d, fc_ghz, h_bs, h_ut, is_los):
    """38.901 UMa pathloss (dB), LOS where ``is_los`` else max(LOS, NLOS')."""
    d_3d = np.clip(d_3d, 1.0, 1e7)
    log_d = np.log10(d_3d)
    log_fc = np.float32(np.log10(fc_ghz))
    d_bp = np.float32(4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / C)
    near = 28.0 + 22.0 * log_d + 20.0 * log_fc
    far = (28.0 + 40.0 * log_d + 20.0 * log_fc
           - np.float32(9.0 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2)))
    pl_los = np.where(d_2d <= d_bp, near, far)
    pl_nlos = 13.54 + 39.08 * log_d + 20.0 * log_fc - 0.6 * (h_ut - 1.5)
    return np.where(is_los, pl_los, np.maximum(pl_los, pl_nlos)).astype(np.float32)


def base_power_w(ue_xy, bs_xy, is_los, shadow_n, p):
    """Received power [N, U, B] (W) per RB before fading: pathloss and shadowing."""
    diff = ue_xy[:, :, None, :] - bs_xy[:, None, :, :]
    d_2d = np.sqrt(np.sum(diff * diff, axis=-1))
    dh = np.float32(p["h_bs"] - p["h_ut"])
    d_3d = np.sqrt(d_2d * d_2d + dh * dh)
    pl = uma_pathloss(d_2d, d_3d, p["fc_ghz"], p["h_bs"], p["h_ut"], is_los)
    sigma = np.where(is_los, np.float32(p["sigma_los"]), np.float32(p["sigma_nlos"]))
    return np.power(np.float32(10.0), (p["tx_dbm_per_rb"] - 30.0 - pl - sigma * shadow_n) / 10.0)


def full_load_sinr(ue_xy, bs_xy, is_los, shadow_n, p):
    """SINR [N, U, B] of each user towards each BS with every other BS transmitting (no
    fading): ``P[u, b] / (sum_{b' != b} P[u, b'] + noise)``."""
    rx = base_power_w(ue_xy, bs_xy, is_los, shadow_n, p)
    interference = rx @ (1.0 - np.eye(rx.shape[-1], dtype=np.float32))  # the other BSs
    noise = np.float32(p["noise_w_per_rb"])
    return np.minimum(rx / np.maximum(interference + noise, 1e-30), 1e15)


def link_sinr(ue_xy, bs_xy, is_los, shadow_n, fading, alloc, p):
    """SINR [N, U, B, R] for a batch of twins; see ``bench_link.make_inputs`` for shapes."""
    base_w = base_power_w(ue_xy, bs_xy, is_los, shadow_n, p)
    rx = base_w[..., None] * fading  # [N, U, B, R]
    tx = alloc.sum(axis=1, keepdims=True)  # [N, 1, B, R]
    txrx = tx * rx
    # sum over the other BSs as one BLAS matmul with a zero-diagonal ones matrix
    n, u, n_b, r = rx.shape
    others = 1.0 - np.eye(n_b, dtype=np.float32)
    flat = np.ascontiguousarray(txrx.transpose(0, 1, 3, 2)).reshape(-1, n_b)
    interference = (flat @ others).reshape(n, u, r, n_b).transpose(0, 1, 3, 2)
    noise = np.float32(p["noise_w_per_rb"])
    return np.minimum(alloc * rx / np.maximum(interference + noise, 1e-30), 1e15)

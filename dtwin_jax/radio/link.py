"""Link budget: unit conversions, received power, per-RB interference and SINR, rates.

Shapes use U users, B base stations, R resource blocks, with any leading batch dims.
All functions are pure, jittable and vmappable; no NaN or inf leaves them for finite
inputs (logs and divisions are guarded, exponents and SINR clipped).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax.radio.pathloss import D_MAX_M

__all__ = [
    "SINR_MAX",
    "db_to_linear",
    "linear_to_db",
    "dbm_to_watt",
    "watt_to_dbm",
    "thermal_noise_dbm",
    "thermal_noise_w",
    "pairwise_distances",
    "received_power_w",
    "received_power_dbm",
    "rb_sinr",
    "full_load_sinr",
    "spectral_efficiency",
    "shannon_rate",
    "load_coupled_rate",
]

SINR_MAX = 1e15
"""SINR values (linear) are clipped to this (150 dB)."""
_TINY = 1e-30
_DB_MAX = 300.0  # dB; caps linear values at 1e30 so sums and products stay finite in float32
_P_MAX = 1e30  # W; received powers are clipped to [0, _P_MAX]
_LOG2_E = 1.4426950408889634  # 1 / ln 2


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def db_to_linear(x_db) -> jax.Array:
    """``10^(x/10)``; inputs above 300 dB are clipped to 300 dB."""
    return jnp.power(10.0, jnp.minimum(_f32(x_db), _DB_MAX) / 10.0)


def linear_to_db(x) -> jax.Array:
    """``10 log10(x)``; non-positive inputs give -300 dB."""
    return 10.0 * jnp.log10(jnp.maximum(_f32(x), _TINY))


def dbm_to_watt(p_dbm) -> jax.Array:
    """Power in dBm to W."""
    return db_to_linear(_f32(p_dbm) - 30.0)


def watt_to_dbm(p_w) -> jax.Array:
    """Power in W to dBm (0 W gives -270 dBm)."""
    return linear_to_db(p_w) + 30.0


def thermal_noise_dbm(bw_hz, noise_figure_db=0.0) -> jax.Array:
    """Thermal noise power (dBm) in ``bw_hz``: ``-174 + 10 log10(bw_hz) + noise_figure_db``."""
    return -174.0 + linear_to_db(bw_hz) + _f32(noise_figure_db)


def thermal_noise_w(bw_hz, noise_figure_db=0.0) -> jax.Array:
    """Thermal noise power (W) in ``bw_hz`` with the given receiver noise figure (dB)."""
    return dbm_to_watt(thermal_noise_dbm(bw_hz, noise_figure_db))


def pairwise_distances(ue_xy, bs_xy, h_ut=1.5, h_bs=25.0) -> tuple[jax.Array, jax.Array]:
    """2D and 3D distances (m) between every user and BS.

    Args:
        ue_xy: [..., U, 2] user positions (m).
        bs_xy: [..., B, 2] BS positions (m).
        h_ut: [] or [..., U] user heights (m).
        h_bs: [] or [..., B] BS heights (m).

    Returns:
        ``(d_2d, d_3d)``, each [..., U, B].
    """
    ue_xy, bs_xy = _f32(ue_xy), _f32(bs_xy)
    # offsets beyond D_MAX_M (10,000 km) are clipped so squares stay finite; x and y are
    # handled as separate [..., U, B] planes (a reduction over a size-2 axis fuses poorly)
    dx, dy = (
        jnp.clip(ue_xy[..., :, None, i] - bs_xy[..., None, :, i], -D_MAX_M, D_MAX_M)
        for i in range(2)
    )
    d_2d = jnp.sqrt(dx * dx + dy * dy)
    h_ut = jnp.asarray(h_ut, jnp.float32)
    h_bs = jnp.asarray(h_bs, jnp.float32)
    dh = (h_ut[..., :, None] if h_ut.ndim else h_ut) - (h_bs[..., None, :] if h_bs.ndim else h_bs)
    dh = jnp.clip(dh, -D_MAX_M, D_MAX_M)
    return d_2d, jnp.sqrt(d_2d * d_2d + dh * dh)


def received_power_w(tx_power_dbm, pathloss_db, shadowing_db=0.0, fading_gain=1.0,
                     antenna_gain_db=0.0) -> jax.Array:
    """Received power (W): ``10^((P_tx + G - PL - X)/10 - 3) * fading``; broadcasting.

    ``shadowing_db`` adds to the pathloss (positive = more loss); ``fading_gain`` is linear.
    """
    budget = _f32(tx_power_dbm) + _f32(antenna_gain_db) - _f32(pathloss_db) - _f32(shadowing_db)
    return jnp.clip(dbm_to_watt(budget) * _f32(fading_gain), 0.0, _P_MAX)


def received_power_dbm(tx_power_dbm, pathloss_db, shadowing_db=0.0, fading_gain=1.0,
                       antenna_gain_db=0.0) -> jax.Array:
    """Received power (dBm), as ``received_power_w`` converted to dBm."""
    return watt_to_dbm(received_power_w(tx_power_dbm, pathloss_db, shadowing_db, fading_gain,
                                        antenna_gain_db))


def _sum_over_others(x: jax.Array, axis: int) -> jax.Array:
    """``out[b] = sum_{b' != b} x[b']`` along a (small, static) ``axis``, for x >= 0.

    Exclusive prefix plus exclusive suffix sums, unrolled over the axis: exact (no
    ``total - x`` cancellation that would lose a weak interferer next to a dominant own
    term in float32), O(n) adds, and plain elementwise ops that XLA fuses into one loop.
    """
    axis = axis % x.ndim
    parts = [jax.lax.index_in_dim(x, i, axis, keepdims=False) for i in range(x.shape[axis])]
    prefix, suffix = [jnp.zeros_like(parts[0])], [jnp.zeros_like(parts[0])]
    for i in range(1, len(parts)):
        prefix.append(prefix[-1] + parts[i - 1])
        suffix.append(suffix[-1] + parts[-i])
    return jnp.stack([p + q for p, q in zip(prefix, suffix[::-1], strict=True)], axis=axis)


def _safe_ratio(num, den) -> jax.Array:
    return jnp.minimum(num / jnp.maximum(den, _TINY), SINR_MAX)


def rb_sinr(rx_power_w, alloc, noise_w) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-(user, BS, RB) signal, inter-cell interference and SINR.

    Args:
        rx_power_w: [..., U, B, R] power (W) user u would receive from BS b on RB r if b
            transmitted there at its full per-RB power (pathloss, shadowing, fading included).
        alloc: [..., U, B, R] share of BS b's RB-r power given to user u (0/1 assignment or
            float power shares in [0, 1]). BS b's transmission on RB r is
            ``sum_u alloc[u, b, r]``, clipped to [0, U].
        noise_w: [] or broadcastable noise power per RB (W).

    Returns:
        ``(signal, interference, sinr)``, each [..., U, B, R]: signal = alloc * rx_power;
        interference = sum over the *other* BSs b' of their transmission on r times the
        power u receives from b' on r; sinr = signal / (interference + noise), clipped to
        ``[0, SINR_MAX]``. Powers are clipped to ``[0, 1e30]`` W, so the result is finite.
    """
    rx, alloc = _f32(rx_power_w), _f32(alloc)
    # Guards sit on products and on small tensors only, so XLA fuses everything that touches
    # [..., U, B, R] into few loops (no clipped copy of rx or alloc is materialised).
    tx = jnp.sum(alloc, axis=-3, keepdims=True)  # [..., 1, B, R]
    tx = jnp.where(tx > 0.0, jnp.minimum(tx, alloc.shape[-3]), 0.0)  # also maps NaN to 0
    signal = jnp.clip(alloc * rx, 0.0, _P_MAX)
    interference = _sum_over_others(jnp.clip(tx * rx, 0.0, _P_MAX), axis=-2)
    sinr = _safe_ratio(signal, interference + jnp.maximum(_f32(noise_w), 0.0))
    return signal, interference, sinr


def full_load_sinr(rx_power_w, noise_w) -> jax.Array:
    """SINR [..., U, B] of each user towards each BS when every other BS transmits at full load.

    ``sinr[u, b] = P[u, b] / (sum_{b' != b} P[u, b'] + noise)`` with ``rx_power_w`` [..., U, B].
    The other BSs' sum is one matmul with ``1 - I`` at full float32 precision (exact zeros, so
    no ``total - own`` cancellation), which XLA runs far faster on CPU than unrolled sums over
    a short minor axis.
    """
    rx = jnp.clip(_f32(rx_power_w), 0.0, _P_MAX)
    others = 1.0 - jnp.eye(rx.shape[-1], dtype=jnp.float32)
    interference = jnp.matmul(rx, others, precision=jax.lax.Precision.HIGHEST)
    return _safe_ratio(rx, interference + jnp.maximum(_f32(noise_w), 0.0))


def spectral_efficiency(sinr) -> jax.Array:
    """``log2(1 + sinr)`` (bit/s/Hz), accurate for small SINR too (negative SINR taken as 0)."""
    return jnp.log1p(jnp.maximum(_f32(sinr), 0.0)) * _LOG2_E


def shannon_rate(bw_hz, sinr) -> jax.Array:
    """Shannon rate (bit/s): ``bw_hz * log2(1 + sinr)`` (negative SINR treated as 0)."""
    return jnp.maximum(_f32(bw_hz), 0.0) * spectral_efficiency(sinr)


def load_coupled_rate(sinr, assoc, bw_hz, active=None) -> tuple[jax.Array, jax.Array]:
    """Load-coupled user rates: a BS's bandwidth is shared equally by its users.

    Args:
        sinr: [..., U, B] full-load SINR (see ``full_load_sinr``).
        assoc: [..., U] int serving-BS index per user (out of range = not served).
        bw_hz: [] or [..., B] bandwidth of each BS (Hz).
        active: optional [..., U] bool/0-1 mask of users that exist; inactive users get
            rate 0 and do not load their BS.

    Returns:
        ``(rate, load)``: rate [..., U] = ``(bw_b / n_b) log2(1 + sinr[u, b])`` with
        ``b = assoc[u]`` and ``n_b`` the number of active users on b; load [..., B] = n_b.
    """
    sinr = _f32(sinr)
    num_bs = sinr.shape[-1]
    serving = jnp.asarray(assoc)[..., None] == jnp.arange(num_bs)  # [..., U, B] one-hot
    if active is not None:
        serving = serving & jnp.asarray(active, bool)[..., None]
    load = jnp.sum(serving, axis=-2, dtype=jnp.float32)  # [..., B]
    bw = jnp.broadcast_to(jnp.maximum(_f32(bw_hz), 0.0), load.shape)
    share = bw / jnp.maximum(load, 1.0)  # [..., B]
    # pick the serving link first: one logarithm per user, not per (user, BS)
    own_share = jnp.sum(jnp.where(serving, share[..., None, :], 0.0), axis=-1)
    own_sinr = jnp.sum(jnp.where(serving, sinr, 0.0), axis=-1)
    return own_share * spectral_efficiency(own_sinr), load

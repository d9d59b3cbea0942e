"""Large-scale pathloss models, elementwise and broadcasting, in dB (gains linear).

All functions are pure JAX, jittable and vmappable, and broadcast their arguments
against each other. Distances are clipped to ``[D_MIN_M, D_MAX_M]`` (and logs guarded),
so every finite input gives a finite output. Units: distances in metres unless the
name says ``_km``; carrier frequency in GHz unless it says ``_mhz``; heights in metres.

3GPP TR 38.901 (Table 7.4.1-1, LOS probability Table 7.4.2-1):

* UMa and UMi street canyon use the breakpoint ``d'_BP = 4 h'_BS h'_UT f_c / c`` with
  effective heights ``h' = h - h_E`` and ``h_E = 1 m`` (for UMa the standard draws h_E
  at random for tall UTs; we fix it at 1 m). RMa uses ``d_BP = 2 pi h_BS h_UT f_c / c``.
* The 2D distance that is compared with the breakpoint is derived from the 3D one:
  ``d_2d = sqrt(max(d_3d^2 - (h_BS - h_UT)^2, 0))``.
* NLOS pathloss is ``max(PL_LOS, PL'_NLOS)`` as in the standard.
* Formulas are evaluated outside their validity ranges too (e.g. below 10 m or beyond
  5 km), by extrapolation of the same expression.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "D_MIN_M",
    "D_MAX_M",
    "SPEED_OF_LIGHT",
    "SIGMA_SF_UMA_LOS",
    "SIGMA_SF_UMA_NLOS",
    "SIGMA_SF_UMI_LOS",
    "SIGMA_SF_UMI_NLOS",
    "SIGMA_SF_RMA_LOS",
    "SIGMA_SF_RMA_LOS_FAR",
    "SIGMA_SF_RMA_NLOS",
    "free_space",
    "power_law_gain",
    "log_distance",
    "uma_los",
    "uma_nlos",
    "uma",
    "umi_los",
    "umi_nlos",
    "umi",
    "rma_los",
    "rma_nlos",
    "rma",
    "los_probability_uma",
    "los_probability_umi",
    "los_probability_rma",
    "sample_los",
    "expected_pathloss",
    "tr36814_macro",
    "tr36814_pico",
    "okumura_hata",
    "slicing_pathloss",
]

D_MIN_M = 1.0
"""Distances below this (m) are floored to it."""
D_MAX_M = 1.0e7
"""Distances above this (m) are clipped to it (keeps squares finite in float32)."""
SPEED_OF_LIGHT = 3.0e8
"""Speed of light used by 38.901 (m/s)."""

# Shadow-fading standard deviations of 38.901 Table 7.4.1-1 (dB).
SIGMA_SF_UMA_LOS = 4.0
SIGMA_SF_UMA_NLOS = 6.0
SIGMA_SF_UMI_LOS = 4.0
SIGMA_SF_UMI_NLOS = 7.82
SIGMA_SF_RMA_LOS = 4.0
"""RMa LOS before the breakpoint (PL1)."""
SIGMA_SF_RMA_LOS_FAR = 6.0
"""RMa LOS beyond the breakpoint (PL2)."""
SIGMA_SF_RMA_NLOS = 8.0

_TINY = 1e-30
_FSPL_1M_1GHZ = 32.44778  # 20 log10(4 pi 1e9 / 299792458)


def _f32(x) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.float32)


def _clip_d(d) -> jax.Array:
    return jnp.clip(_f32(d), D_MIN_M, D_MAX_M)


def _log10(x) -> jax.Array:
    """log10 guarded against zero and negative arguments."""
    return jnp.log10(jnp.maximum(x, _TINY))


def _within_breakpoint(d_3d, h_bs, h_ut, d_bp) -> jax.Array:
    """``d_2d <= d_bp`` with ``d_2d = sqrt(max(d_3d^2 - (h_bs - h_ut)^2, 0))``, compared in
    squares (no square root per link)."""
    dh = h_bs - h_ut
    return (d_bp >= 0.0) & (d_3d * d_3d - dh * dh <= d_bp * d_bp)


def free_space(d_m, fc_ghz) -> jax.Array:
    """Free-space pathloss (dB): ``20 log10(4 pi d f / c)`` with the exact speed of light."""
    return _FSPL_1M_1GHZ + 20.0 * _log10(_clip_d(d_m)) + 20.0 * _log10(_f32(fc_ghz))


def power_law_gain(d, alpha, d_min=D_MIN_M) -> jax.Array:
    """Linear channel power gain ``max(d, d_min)^-alpha`` (the DNT paper uses alpha = 2).

    Gains are capped at 1e30 so that any finite ``d_min`` and ``alpha`` give finite values.
    """
    d = jnp.clip(_f32(d), jnp.maximum(_f32(d_min), _TINY), D_MAX_M)
    return jnp.exp(jnp.minimum(-_f32(alpha) * jnp.log(d), 69.0))


def log_distance(d_m, pl0_db, exponent, d0_m=1.0) -> jax.Array:
    """Log-distance pathloss (dB): ``pl0_db + 10 exponent log10(d_m / d0_m)``."""
    return _f32(pl0_db) + 10.0 * _f32(exponent) * (_log10(_clip_d(d_m)) - _log10(_f32(d0_m)))


def _breakpoint_eff(h_bs, h_ut, fc_ghz) -> jax.Array:
    """38.901 breakpoint d'_BP (m) with effective environment height h_E = 1 m."""
    return 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / SPEED_OF_LIGHT


def _two_slope_los(d_3d, fc_ghz, h_bs, h_ut, a, b_near, c_fc, b_far) -> jax.Array:
    """Shared UMa/UMi LOS form: PL1 before the breakpoint, PL2 after it."""
    d_3d, fc_ghz, h_bs, h_ut = _clip_d(d_3d), _f32(fc_ghz), _f32(h_bs), _f32(h_ut)
    d_bp = _breakpoint_eff(h_bs, h_ut, fc_ghz)
    dh = h_bs - h_ut
    log_d, log_fc = _log10(d_3d), _log10(fc_ghz)
    pl1 = a + b_near * log_d + c_fc * log_fc
    pl2 = a + 40.0 * log_d + c_fc * log_fc - b_far * _log10(d_bp * d_bp + dh * dh)
    return jnp.where(_within_breakpoint(d_3d, h_bs, h_ut, d_bp), pl1, pl2)


def uma_los(d_3d_m, fc_ghz, h_bs_m=25.0, h_ut_m=1.5) -> jax.Array:
    """38.901 UMa LOS pathloss (dB)."""
    return _two_slope_los(d_3d_m, fc_ghz, h_bs_m, h_ut_m, 28.0, 22.0, 20.0, 9.0)


def uma_nlos(d_3d_m, fc_ghz, h_bs_m=25.0, h_ut_m=1.5) -> jax.Array:
    """38.901 UMa NLOS pathloss (dB).

    ``max(PL_LOS, 13.54 + 39.08 log10 d_3d + 20 log10 fc - 0.6 (h_UT - 1.5))``.
    """
    d = _clip_d(d_3d_m)
    h_ut = _f32(h_ut_m)
    pl_nlos = 13.54 + 39.08 * _log10(d) + 20.0 * _log10(_f32(fc_ghz)) - 0.6 * (h_ut - 1.5)
    return jnp.maximum(uma_los(d, fc_ghz, h_bs_m, h_ut), pl_nlos)


def uma(d_3d_m, fc_ghz, h_bs_m, h_ut_m, is_los) -> jax.Array:
    """38.901 UMa pathloss (dB), LOS where ``is_los`` is true, NLOS elsewhere."""
    return jnp.where(is_los, uma_los(d_3d_m, fc_ghz, h_bs_m, h_ut_m),
                     uma_nlos(d_3d_m, fc_ghz, h_bs_m, h_ut_m))


def umi_los(d_3d_m, fc_ghz, h_bs_m=10.0, h_ut_m=1.5) -> jax.Array:
    """38.901 UMi street canyon LOS pathloss (dB)."""
    return _two_slope_los(d_3d_m, fc_ghz, h_bs_m, h_ut_m, 32.4, 21.0, 20.0, 9.5)


def umi_nlos(d_3d_m, fc_ghz, h_bs_m=10.0, h_ut_m=1.5) -> jax.Array:
    """38.901 UMi street canyon NLOS pathloss (dB).

    ``max(PL_LOS, 22.4 + 35.3 log10 d_3d + 21.3 log10 fc - 0.3 (h_UT - 1.5))``.
    """
    d = _clip_d(d_3d_m)
    h_ut = _f32(h_ut_m)
    pl_nlos = 22.4 + 35.3 * _log10(d) + 21.3 * _log10(_f32(fc_ghz)) - 0.3 * (h_ut - 1.5)
    return jnp.maximum(umi_los(d, fc_ghz, h_bs_m, h_ut), pl_nlos)


def umi(d_3d_m, fc_ghz, h_bs_m, h_ut_m, is_los) -> jax.Array:
    """38.901 UMi street canyon pathloss (dB), LOS where ``is_los`` is true."""
    return jnp.where(is_los, umi_los(d_3d_m, fc_ghz, h_bs_m, h_ut_m),
                     umi_nlos(d_3d_m, fc_ghz, h_bs_m, h_ut_m))


def _rma_pl1(d_3d, fc_ghz, h_bld) -> jax.Array:
    hp = jnp.maximum(h_bld, 0.0) ** 1.72
    return (20.0 * _log10(40.0 * jnp.pi * d_3d * fc_ghz / 3.0)
            + jnp.minimum(0.03 * hp, 10.0) * _log10(d_3d)
            - jnp.minimum(0.044 * hp, 14.77)
            + 0.002 * _log10(h_bld) * d_3d)


def rma_los(d_3d_m, fc_ghz, h_bs_m=35.0, h_ut_m=1.5, h_building_m=5.0) -> jax.Array:
    """38.901 RMa LOS pathloss (dB); ``d_BP = 2 pi h_BS h_UT f_c / c``, mean building height h."""
    d, fc = _clip_d(d_3d_m), _f32(fc_ghz)
    h_bs, h_ut, h_bld = _f32(h_bs_m), _f32(h_ut_m), _f32(h_building_m)
    d_bp = jnp.clip(2.0 * jnp.pi * h_bs * h_ut * fc * 1e9 / SPEED_OF_LIGHT, D_MIN_M, D_MAX_M)
    pl1 = _rma_pl1(d, fc, h_bld)
    pl2 = _rma_pl1(d_bp, fc, h_bld) + 40.0 * (_log10(d) - _log10(d_bp))
    return jnp.where(_within_breakpoint(d, h_bs, h_ut, d_bp), pl1, pl2)


def rma_nlos(d_3d_m, fc_ghz, h_bs_m=35.0, h_ut_m=1.5, h_building_m=5.0,
             street_width_m=20.0) -> jax.Array:
    """38.901 RMa NLOS pathloss (dB): ``max(PL_LOS, PL'_NLOS)``."""
    d, fc = _clip_d(d_3d_m), _f32(fc_ghz)
    h_bs, h_ut, h_bld = _f32(h_bs_m), _f32(h_ut_m), _f32(h_building_m)
    w = _f32(street_width_m)
    log_hbs = _log10(h_bs)
    pl_nlos = (161.04 - 7.1 * _log10(w) + 7.5 * _log10(h_bld)
               - (24.37 - 3.7 * (h_bld / jnp.maximum(h_bs, _TINY)) ** 2) * log_hbs
               + (43.42 - 3.1 * log_hbs) * (_log10(d) - 3.0)
               + 20.0 * _log10(fc)
               - (3.2 * _log10(11.75 * h_ut) ** 2 - 4.97))
    return jnp.maximum(rma_los(d, fc, h_bs, h_ut, h_bld), pl_nlos)


def rma(d_3d_m, fc_ghz, h_bs_m, h_ut_m, is_los) -> jax.Array:
    """38.901 RMa pathloss (dB) with default building height / street width."""
    return jnp.where(is_los, rma_los(d_3d_m, fc_ghz, h_bs_m, h_ut_m),
                     rma_nlos(d_3d_m, fc_ghz, h_bs_m, h_ut_m))


def los_probability_uma(d_2d_m, h_ut_m=1.5) -> jax.Array:
    """38.901 UMa LOS probability in [0, 1]; 1 for d_2d <= 18 m (h_UT clipped to <= 23 m)."""
    d = jnp.clip(_f32(d_2d_m), D_MIN_M, D_MAX_M)
    h_ut = jnp.clip(_f32(h_ut_m), 0.0, 23.0)
    c = jnp.where(h_ut <= 13.0, 0.0, (jnp.maximum(h_ut - 13.0, 0.0) / 10.0) ** 1.5)
    base = 18.0 / d + jnp.exp(-d / 63.0) * (1.0 - 18.0 / d)
    p = base * (1.0 + c * 1.25 * (d / 100.0) ** 3 * jnp.exp(-d / 150.0))
    return jnp.where(d <= 18.0, 1.0, jnp.clip(p, 0.0, 1.0))


def los_probability_umi(d_2d_m, h_ut_m=1.5) -> jax.Array:
    """38.901 UMi street canyon LOS probability; 1 for d_2d <= 18 m (``h_ut_m`` unused)."""
    del h_ut_m
    d = jnp.clip(_f32(d_2d_m), D_MIN_M, D_MAX_M)
    p = 18.0 / d + jnp.exp(-d / 36.0) * (1.0 - 18.0 / d)
    return jnp.where(d <= 18.0, 1.0, jnp.clip(p, 0.0, 1.0))


def los_probability_rma(d_2d_m, h_ut_m=1.5) -> jax.Array:
    """38.901 RMa LOS probability; 1 for d_2d <= 10 m (``h_ut_m`` unused)."""
    del h_ut_m
    d = jnp.clip(_f32(d_2d_m), D_MIN_M, D_MAX_M)
    return jnp.where(d <= 10.0, 1.0, jnp.exp(-(d - 10.0) / 1000.0))


def sample_los(key, p_los) -> jax.Array:
    """Bernoulli LOS state (bool, shape of ``p_los``) with probability ``p_los``."""
    p = _f32(p_los)
    return jax.random.uniform(key, p.shape, p.dtype) < p


def expected_pathloss(pl_los_db, pl_nlos_db, p_los) -> jax.Array:
    """Pathloss (dB) of the LOS-probability-weighted mean linear gain.

    ``-10 log10(p 10^(-PL_LOS/10) + (1 - p) 10^(-PL_NLOS/10))``, computed stably.
    """
    scale = jnp.log(10.0) / 10.0
    a, b, p = jnp.broadcast_arrays(-_f32(pl_los_db) * scale, -_f32(pl_nlos_db) * scale,
                                   jnp.clip(_f32(p_los), 0.0, 1.0))
    lse = jax.scipy.special.logsumexp(jnp.stack([a, b]), axis=0, b=jnp.stack([p, 1.0 - p]))
    return -lse / scale


def tr36814_macro(d_km) -> jax.Array:
    """TR 36.814 macro pathloss (dB): ``128.1 + 37.6 log10(d_km)``."""
    return 128.1 + 37.6 * _log10(_clip_d(_f32(d_km) * 1e3) * 1e-3)


def tr36814_pico(d_km) -> jax.Array:
    """TR 36.814 pico pathloss (dB): ``140.7 + 36.7 log10(d_km)``."""
    return 140.7 + 36.7 * _log10(_clip_d(_f32(d_km) * 1e3) * 1e-3)


def slicing_pathloss(d_km) -> jax.Array:
    """Pathloss of the slicing simulator (dB): ``145.4 + 37.5 log10(d_km)``."""
    return 145.4 + 37.5 * _log10(_clip_d(_f32(d_km) * 1e3) * 1e-3)


def okumura_hata(d_km, fc_mhz, h_bs_m, h_ut_m) -> jax.Array:
    """Okumura-Hata urban pathloss (dB), small/medium-city mobile-antenna correction.

    ``69.55 + 26.16 log f - 13.82 log h_BS - a(h_UT) + (44.9 - 6.55 log h_BS) log d_km`` with
    ``a(h_UT) = (1.1 log f - 0.7) h_UT - (1.56 log f - 0.8)``.
    """
    d = _clip_d(_f32(d_km) * 1e3) * 1e-3
    log_f, log_hb = _log10(_f32(fc_mhz)), _log10(_f32(h_bs_m))
    a_hut = (1.1 * log_f - 0.7) * _f32(h_ut_m) - (1.56 * log_f - 0.8)
    return 69.55 + 26.16 * log_f - 13.82 * log_hb - a_hut + (44.9 - 6.55 * log_hb) * _log10(d)

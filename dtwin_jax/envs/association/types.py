"""Params and state of ``association-v0`` (B = num_bs, U = max_users, N = num_candidates)."""

from __future__ import annotations

import jax
from flax import struct

from dtwin_jax.radio import periodic_shadowing


@struct.dataclass
class AssociationParams:
    """Continuous parameters of one twin (vmap over a stack of them for a batch of twins).

    =================  ==========  =======  ==========================================
    field              shape       dtype    meaning (unit)
    =================  ==========  =======  ==========================================
    bs_xy              [B, 2]      float32  BS positions (m), inside the mobility area
                                            widened by ``BS_AREA_MARGIN`` of its sides
    tx_power_dbm       [B]         float32  transmit power (dBm), [-50, 80]
    bs_height_m        [B]         float32  antenna height (m), [1, 300]
    shadow_sigma_db    [B]         float32  shadowing standard deviation (dB), [0, 30]
    shadow_dcorr_m     [B]         float32  shadowing decorrelation distance (m), >= 0.1
    fc_ghz             []          float32  carrier (GHz), [0.5, 100]
    bandwidth_hz       []          float32  bandwidth per BS (Hz), (0, 1e10]
    noise_figure_db    []          float32  UE noise figure (dB), [0, 30]
    ue_height_m        []          float32  UE height (m), [1.5, 22.5] (38.901)
    num_users          []          int32    mean active users (the density profile's
                                            centre), [1, max_users]
    density_amp        []          float32  relative amplitude of the daily-style profile
                                            ``n*(t) = num_users (1 + amp sin(2 pi (t /
                                            period + phase)))``, [0, 1]
    density_period     []          float32  period of that profile (steps), (0, 1e9]
    churn              []          float32  per-step probability that a user leaves (at
                                            least; more when above n*), [0, 1]
    decision_prob      []          float32  probability of a decision token, [0, 1]
    load_ref           []          float32  users per BS that the "paper" state's load
                                            feature divides by, (0, 1e6]
    w_own, w_net,      []          float32  reward weights: own utility, network utility,
    w_handover                              penalty per own handover; each in [0, 1e3]
    rate_ref_bps       []          float32  utility reference rate (bit/s), (0, 1e12]
    episode_length     []          int32    steps per episode, [1, 2**30]
    mobility           --          --       the mobility model's params
    =================  ==========  =======  ==========================================
    """

    bs_xy: jax.Array
    tx_power_dbm: jax.Array
    bs_height_m: jax.Array
    shadow_sigma_db: jax.Array
    shadow_dcorr_m: jax.Array
    fc_ghz: jax.Array
    bandwidth_hz: jax.Array
    noise_figure_db: jax.Array
    ue_height_m: jax.Array
    num_users: jax.Array
    density_amp: jax.Array
    density_period: jax.Array
    churn: jax.Array
    decision_prob: jax.Array
    load_ref: jax.Array
    w_own: jax.Array
    w_net: jax.Array
    w_handover: jax.Array
    rate_ref_bps: jax.Array
    episode_length: jax.Array
    mobility: object


@struct.dataclass
class AssociationState:
    """State of one twin.

    ===========  ==========  =======  ================================================
    field        shape       dtype    meaning (unit)
    ===========  ==========  =======  ================================================
    mobility     --          --       mobility-model state; ``mobility.pos [U, 2]`` (m)
    shadow       --          --       ``ShadowingTile``, ``values [T+1, T+1, B]`` (dB)
    active       [U]         bool     users present in the network
    assoc        [U]         int32    serving BS of each user (kept when inactive)
    sinr         [U, B]      float32  full-load SINR (linear) at the current positions
    candidates   [U, N]      int32    BS index of each candidate, best first
    action_mask  [U, N]      bool     the mask of the last observation
    t            []          int32    step within the episode
    phase        []          float32  phase of the density profile (cycles, [0, 1)),
                                      drawn per episode
    ===========  ==========  =======  ================================================
    """

    mobility: object
    shadow: periodic_shadowing.ShadowingTile
    active: jax.Array
    assoc: jax.Array
    sinr: jax.Array
    candidates: jax.Array
    action_mask: jax.Array
    t: jax.Array
    phase: jax.Array

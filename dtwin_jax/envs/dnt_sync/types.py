"""Params, state, per-slot random draws and per-slot physics results of ``dnt-sync-v0``.

Sizes: M BSs, U users, N RBs per BS, K twin states of history. Units: metres, slots, W, Hz
(the paper's normalised B = 1, P = 1), bit/s (per unit bandwidth with B = 1).
"""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class DntParams:
    """Continuous parameters of one twin (vmap over a stack of them for a batch of twins).

    Fields:
        bs_xy [M, 2] f32 m: BS positions.
        coverage_radius [] f32 m: a BS covers (may serve, and updates the twin of) the users
            within this distance.
        cloud_xy [2] f32 m: position of the cloud server hosting the twin.
        bandwidth [] f32 Hz: bandwidth of one RB (B).
        tx_power [] f32 W: transmit power per RB of a BS, downlink and uplink (P).
        noise_density [] f32 W/Hz: N0; the noise per RB is ``N0 * B``.
        min_distance [] f32 m: distances are floored here in the pathloss ``d^-2``.
        update_size [] f32 bit: D, size of a twin update.
        delay_threshold [] f32 s (slots): alpha; an update arrives iff ``D / rate <= alpha``.
        eps [] f32 in [0, 1]: weight of the sum rate against the twin error in the reward.
        rho [] f32 <= 0: penalty per user served by more than one BS.
        episode_length [] int32 slots.
        mobility: :class:`dtwin_jax.mobility.random_walk.RandomWalkParams` of the U users.
    """

    bs_xy: jax.Array
    coverage_radius: jax.Array
    cloud_xy: jax.Array
    bandwidth: jax.Array
    tx_power: jax.Array
    noise_density: jax.Array
    min_distance: jax.Array
    update_size: jax.Array
    delay_threshold: jax.Array
    eps: jax.Array
    rho: jax.Array
    episode_length: jax.Array
    mobility: object


@struct.dataclass
class DntState:
    """State of one twin.

    Fields:
        mobility: random-walk state; ``mobility.pos [U, 2]`` f32 m, true positions now.
        history [K, U, 2] f32 m: the twin's last K states of every user, oldest first.
        stale [U] int32 slots: slots since the twin last held the user's exact position
            (0 right after an update that covered the user).
        last_update [M] bool: the BS's update arrived in the last slot.
        since_update [M] int32 slots: slots since the BS's last update arrived.
        t [] int32: slot within the episode.
    """

    mobility: object
    history: jax.Array
    stale: jax.Array
    last_update: jax.Array
    since_update: jax.Array
    t: jax.Array


@struct.dataclass
class SlotDraws:
    """Random draws of one slot (all the randomness of the physics).

    Fields:
        fading [U, M, N] f32: downlink Rayleigh power fading ``|h|^2 ~ Exp(1)``.
        uplink_fading [M, N] f32: BS-to-cloud power fading ``~ Exp(1)``.
    """

    fading: jax.Array
    uplink_fading: jax.Array


@struct.dataclass
class SlotResult:
    """Deterministic outcome of one slot (see :func:`dtwin_jax.envs.dnt_sync.physics.slot`).

    Fields:
        serve [M, U] bool: serve decisions after dropping users outside coverage.
        update [M] bool: BSs that send a twin update.
        update_ok [M] bool: updates that arrived (``D / update_rate <= alpha``).
        update_rate [M] f32 bit/s: uplink rate of the update (0 without one).
        alloc [U, M, N] f32 0/1: RB allocation.
        rb_user [M, N] int32: user on each RB, -1 free, -2 the RB reserved for the update.
        rates [U] f32 bit/s: downlink rate of every user (sum over its links).
        rate_bs [M] f32 bit/s: downlink rate each BS delivers.
        served_by [U] int32: the BS that chose the user, -1 none, -2 several.
        twin [U, 2] f32 m: the twin's state of every user after this slot.
        exact [U] bool: the twin holds the user's exact position (an arrived update covered it).
        user_error [U] f32 m^2: ``||s_u - s_twin_u||^2``.
        twin_error [] f32 m^2: sum of ``user_error``.
        reward [M] f32: per-BS local rewards; team_reward [] f32: the team reward.
    """

    serve: jax.Array
    update: jax.Array
    update_ok: jax.Array
    update_rate: jax.Array
    alloc: jax.Array
    rb_user: jax.Array
    rates: jax.Array
    rate_bs: jax.Array
    served_by: jax.Array
    twin: jax.Array
    exact: jax.Array
    user_error: jax.Array
    twin_error: jax.Array
    reward: jax.Array
    team_reward: jax.Array

"""Params and state of ``edge-retrain-v0``.

Sizes: M BSs (= A areas), U users, C classes, D features. Units: metres, seconds, W, Hz, bit,
FLOP, FLOP/s.
"""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class EdgeParams:
    """Continuous parameters of one twin (vmap over a stack of them for a batch of twins).

    Radio and geometry:
        bs_xy [M, 2] f32 m: BS positions; area a is centred on BS a.
        area_softness [] f32 m: a user at distances ``d [M]`` draws its data from area a with
            probability ``softmax(-d / area_softness)[a]``.
        tx_power [] f32 W; noise_power [] f32 W (over ``bandwidth``); bandwidth [] f32 Hz per
            user; pathloss_exp [] f32; min_distance [] f32 m.
    Inference workload (per user and slot):
        samples_per_slot [] f32 L; bits_per_sample [] f32 S bit; infer_flops [] f32 c FLOP
        per sample of the deployed model.
    Compute:
        local_flops [] f32 FLOP/s of a device; bs_flops [] f32 FLOP/s of a BS (shared by its
        users); twin_flops [] f32 FLOP/s of the twin's server (retraining and generation);
        train_flops_factor [] f32: a training pass costs this many inference passes;
        gen_flops [] f32 FLOP per twin-generated sample.
    Large timescale:
        frame_length [] int32 slots between association and retraining decisions (1 = the
        single-timescale scheme); acc_threshold [] f32: retrain when the predicted accuracy
        is below it; max_users_per_bs [] int32: the association's capacity per BS;
        handover_delay [] f32 s charged to a user whose BS changes.
    Learning:
        lr [] f32: SGD step size of retraining; forget [] f32 in (0, 1]: the twin's generator
        keeps this fraction of its statistics at every frame (older history fades).
    Episode and events:
        episode_length [] int32 slots; shift_slot [] int32: from this slot on, every area
        takes the data distribution of the previous area (a sudden shift; -1 = never).
        delay_scale [] f32 s: reward = -system delay / delay_scale.
    Components:
        task: :class:`dtwin_jax.envs.edge_retrain.learning.TaskParams` (the data of the areas).
        mobility: :class:`dtwin_jax.mobility.waypoint.RandomWaypointParams`.
    """

    bs_xy: jax.Array
    area_softness: jax.Array
    tx_power: jax.Array
    noise_power: jax.Array
    bandwidth: jax.Array
    pathloss_exp: jax.Array
    min_distance: jax.Array
    samples_per_slot: jax.Array
    bits_per_sample: jax.Array
    infer_flops: jax.Array
    local_flops: jax.Array
    bs_flops: jax.Array
    twin_flops: jax.Array
    train_flops_factor: jax.Array
    gen_flops: jax.Array
    frame_length: jax.Array
    acc_threshold: jax.Array
    max_users_per_bs: jax.Array
    handover_delay: jax.Array
    lr: jax.Array
    forget: jax.Array
    episode_length: jax.Array
    shift_slot: jax.Array
    delay_scale: jax.Array
    task: object
    mobility: object


@struct.dataclass
class EdgeState:
    """State of one twin at the start of slot ``t`` (what the observation shows; a frame's
    decisions are taken at the start of its first slot's step).

    Fields:
        mobility: random-waypoint state; ``mobility.pos [U, 2]`` f32 m.
        fading [U, M] f32: Rayleigh power fading of this slot (known when deciding).
        assoc [U] int32: serving BS of every user (decided at the frame's start).
        models: every user's classifier params, leaves stacked on a leading ``U`` axis.
        generator: the twin's class-conditional generator
            (:class:`dtwin_jax.envs.edge_retrain.learning.GeneratorState`).
        predicted_acc [U] f32: the accuracy the last frame's decision predicted.
        retrained [U] bool: the model was retrained at the last frame's start.
        t [] int32: slot within the episode.
    """

    mobility: object
    fading: jax.Array
    assoc: jax.Array
    models: object
    generator: object
    predicted_acc: jax.Array
    retrained: jax.Array
    t: jax.Array

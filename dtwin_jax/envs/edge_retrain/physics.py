"""Radio, compute and delay formulas of ``edge-retrain-v0`` (pure, per twin).

Sizes: M BSs, U users. Units: metres, seconds, W, Hz, bit, FLOP. Every function is a
closed form checked against a NumPy reference in the tests.

Uplink (OFDMA, noise-limited: each user has its own band of ``B`` Hz, no inter-user
interference): ``r_um = B log2(1 + P g_um h_um / N)`` with ``g_um = max(d_um, d_min)^-alpha``
and Rayleigh power fading ``h_um ~ Exp(1)``.

Inference in one slot (user u on BS m, ``L`` samples of ``S`` bit and ``c`` FLOP each): a
fraction ``x_u`` of the samples is offloaded, the rest computed locally, both in parallel::

    local_u   = (1 - x_u) L c / f_loc
    offload_u = x_u L S / r_u + x_u L c / (s_u F)
    delay_u   = max(local_u, offload_u)

where ``s_u`` is u's share of its BS's compute ``F`` (FLOP/s): the compute weights ``w`` of
the users on one BS normalised to 1 (equal shares when all are 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dtwin_jax.radio.pathloss import power_law_gain

#: rates are floored here (bit/s) so that a deep fade gives a large finite delay
MIN_RATE = 1.0
#: compute shares are floored here, so offloading with a zero share gives a huge finite delay
MIN_SHARE = 1e-12


def distances(user_xy: jax.Array, bs_xy: jax.Array) -> jax.Array:
    """``user_xy [U, 2]``, ``bs_xy [M, 2]`` m -> ``[U, M]`` m."""
    return jnp.linalg.norm(user_xy[:, None, :] - bs_xy[None, :, :], axis=-1)


def uplink_rates(dist: jax.Array, fading: jax.Array, params) -> jax.Array:
    """``[U, M]`` bit/s: every user's uplink rate to every BS (``fading = 1`` for the mean
    channel)."""
    gain = power_law_gain(dist, params.pathloss_exp, params.min_distance)
    snr = params.tx_power * gain * fading / params.noise_power
    return jnp.maximum(params.bandwidth * jnp.log2(1.0 + snr), MIN_RATE)


def served_rate(rates: jax.Array, assoc: jax.Array) -> jax.Array:
    """``rates [U, M]``, ``assoc [U]`` int32 -> ``[U]`` bit/s to the serving BS."""
    return jnp.take_along_axis(rates, assoc[:, None], axis=1)[:, 0]


def compute_shares(weights: jax.Array, assoc: jax.Array, num_bs: int) -> jax.Array:
    """``weights [U] >= 0``, ``assoc [U]`` -> ``[U]`` shares of the serving BS's compute: the
    weights normalised over the users of each BS (equal shares where they sum to 0)."""
    onehot = jax.nn.one_hot(assoc, num_bs, dtype=weights.dtype)  # [U, M]
    total = (onehot * weights[:, None]).sum(0)  # [M]
    count = onehot.sum(0)
    mine_total = onehot @ total
    mine_count = onehot @ count
    return jnp.where(mine_total > 0, weights / jnp.where(mine_total > 0, mine_total, 1.0),
                     1.0 / jnp.maximum(mine_count, 1.0))


def workload_times(rate: jax.Array, share: jax.Array, params) -> tuple[jax.Array, jax.Array]:
    """Seconds per slot's whole workload: ``local [U]`` (all ``L`` samples on the device) and
    ``offload [U]`` (all uploaded and computed at the BS with ``share``)."""
    work = params.samples_per_slot * params.infer_flops
    local = jnp.broadcast_to(work / params.local_flops, jnp.shape(rate))
    offload = (params.samples_per_slot * params.bits_per_sample / rate
               + work / (jnp.maximum(share, MIN_SHARE) * params.bs_flops))
    return local, offload


def inference_delay(offload_frac: jax.Array, rate: jax.Array, share: jax.Array,
                    params) -> jax.Array:
    """``[U]`` s: ``max(local, offload)`` of the module docstring for fractions ``x [U]``."""
    local, offload = workload_times(rate, share, params)
    return jnp.maximum((1.0 - offload_frac) * local, offload_frac * offload)


def balanced_fraction(rate: jax.Array, share: jax.Array, params) -> jax.Array:
    """``[U]``: the offload fraction that equalises local and offloaded time,
    ``x = local / (local + offload)`` - the delay-minimising split for fixed shares."""
    local, offload = workload_times(rate, share, params)
    return local / (local + offload)


def upload_time(num_samples, rate: jax.Array, params) -> jax.Array:
    """``[U]`` s to upload ``num_samples`` labelled samples at ``rate [U]`` bit/s."""
    return num_samples * params.bits_per_sample / rate


def retrain_time(sample_passes, generated, retraining: jax.Array, params) -> jax.Array:
    """``[U]`` s of model retraining on the twin's server for the users with
    ``retraining [U]`` bool: ``sample_passes`` forward+backward passes (``train_flops_factor *
    infer_flops`` each) plus ``generated`` twin samples (``gen_flops`` each); the retraining
    users share the server's ``twin_flops`` equally (0 s for users not retraining)."""
    work = (sample_passes * params.train_flops_factor * params.infer_flops
            + generated * params.gen_flops)
    sharing = jnp.maximum(jnp.sum(retraining), 1).astype(jnp.float32)
    return jnp.where(retraining, work * sharing / params.twin_flops, 0.0)

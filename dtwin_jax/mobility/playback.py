"""Playback: replay a given trajectory array with linear interpolation in time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.mobility import base


@struct.dataclass
class PlaybackParams:
    """area_min/area_max [2] m; traj [U, T, 2] m, sample k at time ``k * sample_dt``;
    sample_dt [] s between samples; dt [] s per step."""

    area_min: jax.Array
    area_max: jax.Array
    traj: jax.Array
    sample_dt: jax.Array
    dt: jax.Array


@struct.dataclass
class PlaybackState:
    """pos [U, 2] m at time ``t * dt``; t [] int32 step counter."""

    pos: jax.Array
    t: jax.Array


class Playback(base.MobilityModel):
    """Replays ``params.traj``: at step ``t`` user ``u`` is at ``traj[u]`` interpolated
    linearly at time ``t * dt``, clipped to the area.

    After the last sample (time ``(T - 1) * sample_dt``) the replay either loops back to
    the first sample (``loop=True``: period ``(T - 1) * sample_dt``, a jump from the last
    point to the first) or holds the last point. Each step reads two samples per user
    (a dynamic slice), so the cost does not grow with ``T``. Swap trajectories (e.g. new
    samples of a generative model) with ``params.replace(traj=...)``.
    """

    Params = PlaybackParams
    State = PlaybackState

    def __init__(self, num_users: int, num_samples: int, loop: bool = True):
        self.num_users = _checks.check_int("num_users", num_users, lo=1)
        self.num_samples = _checks.check_int("num_samples", num_samples, lo=2)
        self.loop = bool(_checks.check_choice("loop", loop, (True, False)))

    @property
    def default_params(self) -> PlaybackParams:
        """Everyone parked at the centre of a 1 km square: set ``traj`` via make_params."""
        shape = (self.num_users, self.num_samples, 2)
        return PlaybackParams(
            area_min=base.f32([0.0, 0.0]),
            area_max=base.f32([1000.0, 1000.0]),
            traj=jnp.full(shape, 500.0, jnp.float32),
            sample_dt=base.f32(1.0),
            dt=base.f32(1.0),
        )

    def check_params(self, params: PlaybackParams, rules: Rules = CONCRETE) -> None:
        base.check_area(params.area_min, params.area_max, rules)
        rules.array("traj", params.traj, shape=(self.num_users, self.num_samples, 2))
        rules.array("sample_dt", params.sample_dt, shape=(), lo=0.0, lo_open=True)
        rules.array("dt", params.dt, shape=(), lo=0.0, lo_open=True)

    def position(self, t: jax.Array, params: PlaybackParams) -> jax.Array:
        """Positions ``[U, 2]`` (m) at step ``t`` (int, any value >= 0)."""
        span = self.num_samples - 1
        f = t.astype(jnp.float32) * params.dt / params.sample_dt
        f = jnp.mod(f, span) if self.loop else jnp.minimum(f, span)
        i0 = jnp.clip(jnp.floor(f), 0, span - 1)
        frac = f - i0
        pair = jax.lax.dynamic_slice_in_dim(params.traj, i0.astype(jnp.int32), 2, axis=1)
        pos = pair[:, 0] + frac * (pair[:, 1] - pair[:, 0])
        return base.clip_to_area(pos, params.area_min, params.area_max)

    def init(self, key: jax.Array, params: PlaybackParams) -> PlaybackState:
        """Start of the trajectories (``key`` is unused: playback is deterministic)."""
        del key
        t = jnp.zeros((), jnp.int32)
        return PlaybackState(pos=self.position(t, params), t=t)

    def step(self, key: jax.Array, state: PlaybackState, params: PlaybackParams):
        del key
        t = state.t + 1
        return PlaybackState(pos=self.position(t, params), t=t)

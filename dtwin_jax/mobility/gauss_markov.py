"""Gauss-Markov mobility: speed and heading are AR(1) processes around their means."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.mobility import base


@struct.dataclass
class GaussMarkovParams:
    """area_min/area_max [2] m; dt [] s; alpha [] memory in [0, 1]; mean_speed [] m/s;
    speed_std [] m/s; mean_direction [U] rad; direction_std [] rad; edge_margin [] m."""

    area_min: jax.Array
    area_max: jax.Array
    dt: jax.Array
    alpha: jax.Array
    mean_speed: jax.Array
    speed_std: jax.Array
    mean_direction: jax.Array
    direction_std: jax.Array
    edge_margin: jax.Array


@struct.dataclass
class GaussMarkovState:
    """pos [U, 2] m; speed [U] m/s; direction [U] rad in [-pi, pi); mean_dir [U] rad,
    the heading the user is drawn to (its ``mean_direction`` until it nears an edge)."""

    pos: jax.Array
    speed: jax.Array
    direction: jax.Array
    mean_dir: jax.Array


class GaussMarkov(base.MobilityModel):
    """Gauss-Markov mobility (Liang and Haas; boundary handling after Camp et al.).

    Each step ``pos += speed * dt * (cos, sin)(direction)``, then
    ``speed' = a speed + (1 - a) mean_speed + sqrt(1 - a^2) speed_std w`` and the same
    recursion for the heading around ``mean_dir`` (angles wrapped). The speed process is
    stationary from ``init`` with mean ``mean_speed``, variance ``speed_std^2`` and lag-1
    correlation ``alpha``; it is used as is, so a negative value moves the user backwards.
    Boundaries: positions are reflected at the walls (heading mirrored), and a user
    within ``edge_margin`` of a wall has its ``mean_dir`` turned towards the area centre.
    """

    Params = GaussMarkovParams
    State = GaussMarkovState

    def __init__(self, num_users: int):
        self.num_users = _checks.check_int("num_users", num_users, lo=1)

    @property
    def default_params(self) -> GaussMarkovParams:
        headings = jnp.arange(self.num_users, dtype=jnp.float32) * (2 * jnp.pi / self.num_users)
        return GaussMarkovParams(
            area_min=base.f32([0.0, 0.0]),
            area_max=base.f32([1000.0, 1000.0]),
            dt=base.f32(1.0),
            alpha=base.f32(0.75),
            mean_speed=base.f32(5.0),
            speed_std=base.f32(1.0),
            mean_direction=_wrap(headings),
            direction_std=base.f32(0.5),
            edge_margin=base.f32(50.0),
        )

    def check_params(self, params: GaussMarkovParams, rules: Rules = CONCRETE) -> None:
        base.check_area(params.area_min, params.area_max, rules)
        rules.array("dt", params.dt, shape=(), lo=0.0, lo_open=True)
        rules.array("alpha", params.alpha, shape=(), lo=0.0, hi=1.0)
        for name in ("mean_speed", "speed_std", "direction_std", "edge_margin"):
            rules.array(name, getattr(params, name), shape=(), lo=0.0)
        rules.array("mean_direction", params.mean_direction, shape=(self.num_users,))

    def init(self, key: jax.Array, params: GaussMarkovParams) -> GaussMarkovState:
        """Uniform positions; speed and heading drawn from their stationary laws."""
        k_pos, k_noise = jax.random.split(key)
        pos = base.uniform_in_area(k_pos, self.num_users, params.area_min, params.area_max)
        w = jax.random.normal(k_noise, (2, self.num_users), dtype=jnp.float32)
        return GaussMarkovState(
            pos=pos,
            speed=params.mean_speed + params.speed_std * w[0],
            direction=_wrap(params.mean_direction + params.direction_std * w[1]),
            mean_dir=params.mean_direction,
        )

    def step(self, key: jax.Array, state: GaussMarkovState, params: GaussMarkovParams):
        heading = jnp.stack([jnp.cos(state.direction), jnp.sin(state.direction)], axis=-1)
        pos, flip = _reflect(
            state.pos + (state.speed * params.dt)[:, None] * heading,
            params.area_min,
            params.area_max,
        )
        direction = jnp.where(flip[:, 0], jnp.pi - state.direction, state.direction)
        direction = jnp.where(flip[:, 1], -direction, direction)

        centre = 0.5 * (params.area_min + params.area_max)
        near_edge = jnp.any(
            (pos - params.area_min < params.edge_margin)
            | (params.area_max - pos < params.edge_margin),
            axis=-1,
        )
        to_centre = jnp.arctan2(centre[1] - pos[:, 1], centre[0] - pos[:, 0])
        mean_dir = jnp.where(near_edge, to_centre, state.mean_dir)

        a = params.alpha
        w = jax.random.normal(key, (2, self.num_users), dtype=jnp.float32)
        scale = jnp.sqrt(jnp.maximum(1.0 - a * a, 0.0))
        speed = a * state.speed + (1.0 - a) * params.mean_speed + scale * params.speed_std * w[0]
        direction = direction + (1.0 - a) * _wrap(mean_dir - direction)
        direction = _wrap(direction + scale * params.direction_std * w[1])
        return GaussMarkovState(pos=pos, speed=speed, direction=direction, mean_dir=mean_dir)


def _wrap(angle: jax.Array) -> jax.Array:
    """Angles wrapped to [-pi, pi)."""
    return jnp.mod(angle + jnp.pi, 2 * jnp.pi) - jnp.pi


def _reflect(pos: jax.Array, lo: jax.Array, hi: jax.Array):
    """Fold ``pos [U, 2]`` into ``[lo, hi]`` by mirror reflections at the walls.

    Returns the folded positions and ``flip [U, 2]``: True where an odd number of
    reflections reversed that velocity component.
    """
    span = hi - lo
    rel = jnp.mod(pos - lo, 2.0 * span)
    flip = rel > span
    folded = lo + jnp.where(flip, 2.0 * span - rel, rel)
    return base.clip_to_area(folded, lo, hi), flip

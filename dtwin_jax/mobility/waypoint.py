"""Random waypoint: move at a constant speed to a uniform destination, pause, repeat."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.mobility import base


@struct.dataclass
class RandomWaypointParams:
    """area_min/area_max [2] m; dt [] s per step; speed_min/speed_max [] m/s;
    pause_min/pause_max [] s."""

    area_min: jax.Array
    area_max: jax.Array
    dt: jax.Array
    speed_min: jax.Array
    speed_max: jax.Array
    pause_min: jax.Array
    pause_max: jax.Array


@struct.dataclass
class RandomWaypointState:
    """pos/dest [U, 2] m; speed [U] m/s of the current leg; pause_left [U] s (moving when 0)."""

    pos: jax.Array
    dest: jax.Array
    speed: jax.Array
    pause_left: jax.Array


class RandomWaypoint(base.MobilityModel):
    """Random waypoint mobility in a rectangle.

    A moving user advances ``speed * dt`` towards its destination; on reaching it (the
    step ends there) it draws a pause in ``[pause_min, pause_max]``, a new uniform
    destination and a new speed in ``[speed_min, speed_max]``. A paused user stays for
    ``ceil(pause / dt)`` steps, then moves. Users start moving from uniform positions
    (the initial state is not the model's stationary distribution).
    """

    Params = RandomWaypointParams
    State = RandomWaypointState

    def __init__(self, num_users: int):
        self.num_users = _checks.check_int("num_users", num_users, lo=1)

    @property
    def default_params(self) -> RandomWaypointParams:
        return RandomWaypointParams(
            area_min=base.f32([0.0, 0.0]),
            area_max=base.f32([1000.0, 1000.0]),
            dt=base.f32(1.0),
            speed_min=base.f32(1.0),
            speed_max=base.f32(10.0),
            pause_min=base.f32(0.0),
            pause_max=base.f32(10.0),
        )

    def check_params(self, params: RandomWaypointParams, rules: Rules = CONCRETE) -> None:
        base.check_area(params.area_min, params.area_max, rules)
        rules.array("dt", params.dt, shape=(), lo=0.0, lo_open=True)
        rules.array("speed_min", params.speed_min, shape=(), lo=0.0, lo_open=True)
        base.check_range("speed_min", params.speed_min, "speed_max", params.speed_max, rules=rules)
        base.check_range("pause_min", params.pause_min, "pause_max", params.pause_max, rules=rules)

    def _new_leg(self, key: jax.Array, params: RandomWaypointParams):
        """Fresh destination [U, 2], speed [U] and pause [U] for every user."""
        u = jax.random.uniform(key, (self.num_users, 4), dtype=jnp.float32)  # one RNG call
        dest = params.area_min + u[:, :2] * (params.area_max - params.area_min)
        speed = params.speed_min + u[:, 2] * (params.speed_max - params.speed_min)
        pause = params.pause_min + u[:, 3] * (params.pause_max - params.pause_min)
        return dest, speed, pause

    def init(self, key: jax.Array, params: RandomWaypointParams) -> RandomWaypointState:
        """Uniform positions, each user moving towards a uniform destination."""
        k_pos, k_leg = jax.random.split(key)
        pos = base.uniform_in_area(k_pos, self.num_users, params.area_min, params.area_max)
        dest, speed, _ = self._new_leg(k_leg, params)
        return RandomWaypointState(
            pos=pos, dest=dest, speed=speed, pause_left=jnp.zeros(self.num_users, jnp.float32)
        )

    def step(self, key: jax.Array, state: RandomWaypointState, params: RandomWaypointParams):
        moving = state.pause_left <= 0.0
        delta = state.dest - state.pos
        dist = jnp.linalg.norm(delta, axis=-1)
        travel = state.speed * params.dt
        arrive = moving & (dist <= travel)
        ahead = state.pos + delta * (travel / jnp.maximum(dist, 1e-6))[:, None]
        pos = jnp.where(arrive[:, None], state.dest, jnp.where(moving[:, None], ahead, state.pos))
        pause_left = jnp.maximum(state.pause_left - params.dt, 0.0)
        dest, speed, pause = self._new_leg(key, params)
        return RandomWaypointState(
            pos=base.clip_to_area(pos, params.area_min, params.area_max),
            dest=jnp.where(arrive[:, None], dest, state.dest),
            speed=jnp.where(arrive, speed, state.speed),
            pause_left=jnp.where(arrive, pause, pause_left),
        )

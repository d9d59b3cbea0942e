"""Grid random walk of the DNT paper: each slot a user stays or moves one step in +y, -y, -x, +x."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.mobility import base

MOVES = jnp.array([[0.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0], [1.0, 0.0]], jnp.float32)
"""Unit displacement of the five moves, in order: stay, +y, -y, -x, +x."""


@struct.dataclass
class RandomWalkParams:
    """area_min/area_max [2] m; move_probs [U, 5] (rows sum to 1, order of ``MOVES``);
    step_length [] m per slot."""

    area_min: jax.Array
    area_max: jax.Array
    move_probs: jax.Array
    step_length: jax.Array


@struct.dataclass
class RandomWalkState:
    """pos [U, 2] float32 m; move [U] int32 index of the last move (0 = stay at init)."""

    pos: jax.Array
    move: jax.Array


class RandomWalk(base.MobilityModel):
    """Per-user five-move random walk clipped to the area (DNT area: 300 m x 100 m)."""

    Params = RandomWalkParams
    State = RandomWalkState

    def __init__(self, num_users: int):
        self.num_users = _checks.check_int("num_users", num_users, lo=1)

    @property
    def default_params(self) -> RandomWalkParams:
        return RandomWalkParams(
            area_min=base.f32([-150.0, -50.0]),
            area_max=base.f32([150.0, 50.0]),
            move_probs=jnp.full((self.num_users, 5), 0.2, jnp.float32),
            step_length=base.f32(5.0),
        )

    def check_params(self, params: RandomWalkParams, rules: Rules = CONCRETE) -> None:
        base.check_area(params.area_min, params.area_max, rules)
        probs = params.move_probs
        rules.array("move_probs", probs, shape=(self.num_users, 5), lo=0.0, hi=1.0)
        sums = probs.sum(-1)
        rules.require(rules.xp.all(abs(sums - 1.0) <= 1e-5),
                      "move_probs must sum to 1 along axis -1; sums are {}", sums)
        rules.array("step_length", params.step_length, shape=(), lo=0.0)

    def init(self, key: jax.Array, params: RandomWalkParams) -> RandomWalkState:
        """Users uniform in the area."""
        pos = base.uniform_in_area(key, self.num_users, params.area_min, params.area_max)
        return RandomWalkState(pos=pos, move=jnp.zeros(self.num_users, jnp.int32))

    def step(self, key: jax.Array, state: RandomWalkState, params: RandomWalkParams):
        """Draw one move per user from its ``move_probs`` row, step, clip to the area."""
        u = jax.random.uniform(key, (self.num_users, 1), dtype=jnp.float32)
        cdf = jnp.cumsum(params.move_probs, axis=-1)
        cdf = cdf / jnp.maximum(cdf[:, -1:], 1e-12)
        move = jnp.sum(u >= cdf[:, :4], axis=-1).astype(jnp.int32)
        pos = state.pos + params.step_length * MOVES[move]
        return RandomWalkState(
            pos=base.clip_to_area(pos, params.area_min, params.area_max), move=move
        )

"""Tiny environments with known answers, for testing the API and the learners."""

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv
from dtwin_jax.envs.spaces import Box, Discrete


@struct.dataclass
class CounterParams:
    horizon: int = 5
    goal: int = 1


@struct.dataclass
class CounterState:
    t: jax.Array
    total: jax.Array


class CounterEnv(Environment):
    """Reward 1 when the action equals ``params.goal``; episode truncates after ``horizon``."""

    @property
    def default_params(self):
        return CounterParams()

    def reset_env(self, key, params):
        state = CounterState(t=jnp.int32(0), total=jnp.float32(0.0))
        return jnp.zeros((1,), jnp.float32), state

    def step_env(self, key, state, action, params):
        reward = (jnp.asarray(action) == params.goal).astype(jnp.float32)
        state = CounterState(t=state.t + 1, total=state.total + reward)
        obs = state.t.astype(jnp.float32)[None] / params.horizon
        trunc = state.t >= params.horizon
        return obs, state, reward, jnp.bool_(False), trunc, {"total": state.total}

    def observation_space(self, params):
        return Box(0.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(3)


class MaskedTeamEnv(MultiAgentEnv):
    """Four agent slots, three live; action 2 is illegal; reward = 1 for action 1."""

    num_agents = 4

    @property
    def default_params(self):
        return CounterParams()

    def _obs(self, t, params):
        feats = jnp.full((4, 2), t / params.horizon, jnp.float32)
        mask = jnp.array([True, True, False])[None].repeat(4, 0)
        return AgentObs(feats, mask, jnp.array([True, True, True, False]))

    def reset_env(self, key, params):
        return self._obs(0, params), CounterState(t=jnp.int32(0), total=jnp.float32(0.0))

    def step_env(self, key, state, action, params):
        reward = (action == 1).astype(jnp.float32) * jnp.array([1, 1, 1, 0], jnp.float32)
        state = CounterState(t=state.t + 1, total=state.total + reward.sum())
        obs = self._obs(state.t, params)
        info = {"agent_mask": obs.agent_mask}
        return obs, state, reward, jnp.bool_(False), state.t >= params.horizon, info

    def observation_space(self, params):
        return Box(0.0, 1.0, (2,))

    def action_space(self, params):
        return Discrete(3)

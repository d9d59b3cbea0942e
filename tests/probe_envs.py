"""Tiny environments with known answers, for testing the API and the learners."""

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax._params import CONCRETE
from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv
from dtwin_jax.envs.spaces import Box, Discrete


@struct.dataclass
class CounterParams:
    horizon: int = 5
    goal: int = 1


class CounterRules:
    """``check_params`` of the probe envs' ``CounterParams``."""

    def check_params(self, params, rules=CONCRETE):
        rules.array("horizon", params.horizon, (), 1, integer=True)
        rules.array("goal", params.goal, (), 0, integer=True)


@struct.dataclass
class CounterState:
    t: jax.Array
    total: jax.Array


class CounterEnv(CounterRules, Environment):
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


class MaskedTeamEnv(CounterRules, MultiAgentEnv):
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


class ConstantRewardEnv(CounterRules, Environment):
    """Reward 1 every step; obs ``[t / horizon]``; terminates after ``horizon`` steps.

    The value of the state at time ``t`` is ``(1 - gamma ** (horizon - t)) / (1 - gamma)``.
    """

    @property
    def default_params(self):
        return CounterParams(horizon=4)

    def reset_env(self, key, params):
        return jnp.zeros((1,), jnp.float32), CounterState(t=jnp.int32(0), total=jnp.float32(0.0))

    def step_env(self, key, state, action, params):
        state = CounterState(t=state.t + 1, total=state.total + 1.0)
        obs = state.t.astype(jnp.float32)[None] / params.horizon
        return obs, state, jnp.float32(1.0), state.t >= params.horizon, jnp.bool_(False), {}

    def observation_space(self, params):
        return Box(0.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(2)


class TimeLimitEnv(CounterRules, Environment):
    """Two states: ``s=0`` (reward 0) moves to the absorbing ``s=1`` (reward 1 per step).

    The obs is ``[s]``; the episode is *truncated* after ``horizon`` steps (a time limit, not
    part of the task), so the values are ``V(1) = 1 / (1 - gamma)`` and ``V(0) = gamma V(1)``.
    """

    @property
    def default_params(self):
        return CounterParams(horizon=2)

    def reset_env(self, key, params):
        return jnp.zeros((1,), jnp.float32), CounterState(t=jnp.int32(0), total=jnp.float32(0.0))

    def step_env(self, key, state, action, params):
        reward = (state.t > 0).astype(jnp.float32)
        state = CounterState(t=state.t + 1, total=state.total + reward)
        trunc = state.t >= params.horizon
        return jnp.ones((1,), jnp.float32), state, reward, jnp.bool_(False), trunc, {}

    def observation_space(self, params):
        return Box(0.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(2)


class MaskedBanditEnv(CounterRules, MultiAgentEnv):
    """One agent, three arms paying 0.5, 1.0, 0.0; arm 1 (the best) is always illegal.

    One-step episodes (terminated every step). ``info["illegal"]`` is 1.0 if arm 1 was pulled.
    """

    num_agents = 1

    @property
    def default_params(self):
        return CounterParams()

    def _obs(self):
        return AgentObs(jnp.zeros((1, 1), jnp.float32), jnp.array([[True, False, True]]),
                        jnp.array([True]))

    def reset_env(self, key, params):
        return self._obs(), CounterState(t=jnp.int32(0), total=jnp.float32(0.0))

    def step_env(self, key, state, action, params):
        reward = jnp.array([0.5, 1.0, 0.0], jnp.float32)[action]
        state = CounterState(t=state.t + 1, total=state.total + reward.sum())
        info = {"agent_mask": jnp.array([True]), "illegal": (action[0] == 1).astype(jnp.float32)}
        return self._obs(), state, reward, jnp.bool_(True), jnp.bool_(False), info

    def observation_space(self, params):
        return Box(0.0, 0.0, (1,))

    def action_space(self, params):
        return Discrete(3)


class AuditedTeamEnv(MaskedTeamEnv):
    """:class:`MaskedTeamEnv` reporting per-agent ``info["illegal"]`` (``[A]``, 1.0 = action 2).

    With ``garbage_padding`` the padded slot (agent 3) gets huge features, no legal action and
    a reward of 50: a learner that respects ``agent_mask`` must behave exactly as without.
    """

    def __init__(self, garbage_padding: bool = False):
        self.garbage_padding = garbage_padding

    def _obs(self, t, params):
        obs = super()._obs(t, params)
        if not self.garbage_padding:
            return obs
        features = obs.features.at[3].set(jnp.array([1e3, -7e2], jnp.float32))
        return obs.replace(features=features, action_mask=obs.action_mask.at[3].set(False))

    def step_env(self, key, state, action, params):
        obs, state, reward, term, trunc, info = super().step_env(key, state, action, params)
        if self.garbage_padding:
            reward = reward.at[3].set(50.0)
        info = dict(info, illegal=(action == 2).astype(jnp.float32))
        return obs, state, reward, term, trunc, info

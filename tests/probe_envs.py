"""Tiny environments with known answers, for testing the API and the learners."""

import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax._params import CONCRETE
from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv
from dtwin_jax.envs.spaces import Box, Discrete, MultiDiscrete, Simplex


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


class _OneStepEnv(CounterRules):
    """Shared parts of the one-step probes: constant obs, terminated every step."""

    @property
    def default_params(self):
        return CounterParams()

    def _state(self, state=None, reward=0.0):
        if state is None:
            return CounterState(t=jnp.int32(0), total=jnp.float32(0.0))
        total = state.total + jnp.sum(reward, dtype=jnp.float32)
        return CounterState(t=state.t + 1, total=total)


class MultiDiscreteBanditEnv(_OneStepEnv, MultiAgentEnv):
    """Three agent slots (two live), action ``MultiDiscrete((3, 2))``, one-step episodes.

    Factor 0 pays 0 / 1 / 2 for values 0 / 1 / 2 but value 2 is masked; factor 1 pays its value.
    Best legal reward 2 per agent, uniform legal policy 1. ``info["illegal"]`` ``[A]``: 1.0
    where a live agent chose a masked value.
    """

    num_agents = 3

    def _obs(self):
        mask = jnp.array([[True, True, False], [True, True, False]])  # [F, n_max]
        return AgentObs(jnp.ones((3, 2), jnp.float32), jnp.broadcast_to(mask, (3, 2, 3)),
                        jnp.array([True, True, False]))

    def reset_env(self, key, params):
        return self._obs(), self._state()

    def step_env(self, key, state, action, params):
        obs = self._obs()
        reward = (action[:, 0] + action[:, 1]).astype(jnp.float32) * obs.agent_mask
        illegal = (action[:, 0] == 2) & obs.agent_mask
        info = {"agent_mask": obs.agent_mask, "illegal": illegal.astype(jnp.float32)}
        return obs, self._state(state, reward), reward, jnp.bool_(True), jnp.bool_(False), info

    def observation_space(self, params):
        return Box(0.0, 1.0, (2,))

    def action_space(self, params):
        return MultiDiscrete((3, 2))


BOX_TARGET = (1.5, -0.5)


class BoxTargetEnv(_OneStepEnv, Environment):
    """Single agent, action ``Box(-1, 2, (2,))``, reward ``-|a - (1.5, -0.5)|^2``, one step.

    A uniform random action scores -3.5 on average; the optimum is 0.
    """

    def reset_env(self, key, params):
        return jnp.ones((1,), jnp.float32), self._state()

    def step_env(self, key, state, action, params):
        reward = -jnp.sum(jnp.square(action - jnp.array(BOX_TARGET, jnp.float32)))
        obs = jnp.ones((1,), jnp.float32)
        return obs, self._state(state, reward), reward, jnp.bool_(True), jnp.bool_(False), {}

    def observation_space(self, params):
        return Box(0.0, 1.0, (1,))

    def action_space(self, params):
        return Box(-1.0, 2.0, (2,))


SHARE_TARGET = (0.6, 0.3, 0.1)


class ShareTargetEnv(_OneStepEnv, MultiAgentEnv):
    """Two agents each choosing shares ``Simplex(3)``; reward ``-10 |a - (0.6, 0.3, 0.1)|^2``.

    A uniform (Dirichlet(1, 1, 1)) policy scores about -2.93; the optimum is 0. Continuous
    space: ``action_mask`` is ``None``.
    """

    num_agents = 2

    def _obs(self):
        return AgentObs(jnp.ones((2, 1), jnp.float32), None, jnp.array([True, True]))

    def reset_env(self, key, params):
        return self._obs(), self._state()

    def step_env(self, key, state, action, params):
        reward = -10.0 * jnp.sum(jnp.square(action - jnp.array(SHARE_TARGET, jnp.float32)), axis=-1)
        info = {"agent_mask": jnp.array([True, True])}
        done = jnp.bool_(True)
        return self._obs(), self._state(state, reward), reward, done, jnp.bool_(False), info

    def observation_space(self, params):
        return Box(0.0, 1.0, (1,))

    def action_space(self, params):
        return Simplex(3)


@struct.dataclass
class CartPoleParams:
    """Classic cart-pole (Barto, Sutton & Anderson 1983; gym's CartPole constants)."""

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    half_length: float = 0.5  # m, half the pole's length
    force_mag: float = 10.0  # N
    tau: float = 0.02  # s per step (explicit Euler)
    theta_limit: float = 12 * 2 * 3.141592653589793 / 360  # rad
    x_limit: float = 2.4  # m
    horizon: int = 200


@struct.dataclass
class CartPoleState:
    s: jax.Array  # [4] x, x_dot, theta, theta_dot
    t: jax.Array


class CartPoleEnv(Environment):
    """Cart-pole balancing: obs ``[x, x_dot, theta, theta_dot]``, actions push left / right,
    reward 1 per step, terminated when ``|x| > x_limit`` or ``|theta| > theta_limit``,
    truncated after ``horizon`` steps; reset state uniform in ``[-0.05, 0.05]^4``."""

    @property
    def default_params(self):
        return CartPoleParams()

    def check_params(self, params, rules=CONCRETE):
        for name in ("gravity", "masscart", "masspole", "half_length", "force_mag", "tau",
                     "theta_limit", "x_limit"):
            rules.array(name, getattr(params, name), (), 0.0, lo_open=True)
        rules.array("horizon", params.horizon, (), 1, integer=True)

    def reset_env(self, key, params):
        s = jax.random.uniform(key, (4,), jnp.float32, -0.05, 0.05)
        return s, CartPoleState(s=s, t=jnp.int32(0))

    def step_env(self, key, state, action, params):
        x, x_dot, th, th_dot = state.s
        force = jnp.where(action == 1, params.force_mag, -params.force_mag)
        cos, sin = jnp.cos(th), jnp.sin(th)
        total = params.masscart + params.masspole
        pml = params.masspole * params.half_length
        temp = (force + pml * th_dot**2 * sin) / total
        th_acc = (params.gravity * sin - cos * temp) / (
            params.half_length * (4.0 / 3.0 - params.masspole * cos**2 / total))
        x_acc = temp - pml * th_acc * cos / total
        s = jnp.stack([x + params.tau * x_dot, x_dot + params.tau * x_acc,
                       th + params.tau * th_dot, th_dot + params.tau * th_acc]).astype(jnp.float32)
        t = state.t + 1
        term = (jnp.abs(s[0]) > params.x_limit) | (jnp.abs(s[2]) > params.theta_limit)
        return s, CartPoleState(s=s, t=t), jnp.float32(1.0), term, t >= params.horizon, {}

    def observation_space(self, params):
        return Box(-jnp.inf, jnp.inf, (4,))

    def action_space(self, params):
        return Discrete(2)

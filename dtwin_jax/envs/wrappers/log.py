"""``LogWrapper``: episode returns and lengths carried in the state, reported in ``info``.

Wraps anything with the auto-resetting ``reset(key, params)`` /
``step(key, state, action, params)`` API: an :class:`~dtwin_jax.envs.base.Environment`
(batch shape ``()``) or a :class:`~dtwin_jax.envs.wrappers.VecEnv` (batch shape
``[num_envs]``). Per twin it accumulates the return and length of the running episode and,
added to ``info``:

=============================  ===========  =====================================================
key                            shape        meaning
=============================  ===========  =====================================================
``returned_episode``           batch, bool  an episode ended on this step (terminated | truncated)
``returned_episode_returns``   batch, f32   return of the latest finished episode (0 before one)
``returned_episode_lengths``   batch, i32   its length in steps
=============================  ===========  =====================================================

A twin's step reward is ``info["team_reward"]`` when the env reports one (cooperative
multi-agent envs), else its reward for a single-agent env, else the mean of the per-agent
reward ``[..., A]`` over the agents live before the step (``agent_mask`` of the observation the
action answered).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from dtwin_jax.envs.base import AgentObs, MultiAgentEnv
from dtwin_jax.envs.wrappers.vector import VecEnv


@struct.dataclass
class LogState:
    """The wrapped state plus per-twin episode counters (batch shape of the wrapped env).

    ``live [..., A]`` bool: agents live in the current observation (multi-agent envs only).
    """

    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array
    returned_return: jax.Array
    returned_length: jax.Array
    live: jax.Array | None


class LogWrapper:
    """Episode statistics for an env or a :class:`VecEnv` (see module docstring)."""

    def __init__(self, env):
        self.inner = env
        self.env = getattr(env, "env", env)  # the single-twin Environment
        self.multi = isinstance(self.env, MultiAgentEnv)
        self.batch_shape = (env.num_envs,) if isinstance(env, VecEnv) else ()

    def _live(self, obs: AgentObs) -> jax.Array | None:
        return obs.agent_mask if self.multi else None

    def reset(self, key: chex.PRNGKey, params=None) -> tuple[Any, LogState]:
        """Reset the wrapped env (``params`` as it takes them); counters start at 0."""
        obs, state = self.inner.reset(key, params)
        zeros_f = jnp.zeros(self.batch_shape, jnp.float32)
        zeros_i = jnp.zeros(self.batch_shape, jnp.int32)
        return obs, LogState(state, zeros_f, zeros_i, zeros_f, zeros_i, self._live(obs))

    def step(self, key: chex.PRNGKey, state: LogState, action, params=None):
        """Step the wrapped env and update the counters; same returns, ``info`` extended."""
        obs, env_state, reward, terminated, truncated, info = self.inner.step(
            key, state.env_state, action, params
        )
        twin_reward = self.twin_reward(reward, info, state.live)
        done = jnp.logical_or(terminated, truncated)
        ep_return = state.episode_return + twin_reward
        ep_length = state.episode_length + 1
        returned_return = jnp.where(done, ep_return, state.returned_return)
        returned_length = jnp.where(done, ep_length, state.returned_length)
        new_state = LogState(
            env_state,
            jnp.where(done, 0.0, ep_return),
            jnp.where(done, 0, ep_length),
            returned_return,
            returned_length,
            self._live(obs),
        )
        info = dict(
            info,
            returned_episode=done,
            returned_episode_returns=returned_return,
            returned_episode_lengths=returned_length,
        )
        return obs, new_state, reward, terminated, truncated, info

    def twin_reward(self, reward: jax.Array, info: dict, live: jax.Array | None) -> jax.Array:
        """A twin's scalar step reward (batch shape), as described in the module docstring."""
        if "team_reward" in info:
            return jnp.asarray(info["team_reward"], jnp.float32)
        reward = jnp.asarray(reward, jnp.float32)
        if not self.multi:
            return reward.reshape(self.batch_shape)
        return jnp.where(live, reward, 0.0).sum(-1) / jnp.maximum(live.sum(-1), 1)

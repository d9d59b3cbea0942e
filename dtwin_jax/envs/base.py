"""The environment API: gymnax-shaped pure functions, multi-agent by stacked arrays.

``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)``.
``step`` auto-resets: when an episode ends, the returned ``obs``/``state`` start the next
episode (``reset_from(key, final_state, params)``, a plain reset unless the env carries
something over episodes) and ``info["final_observation"]`` holds the last observation of the
finished one.
``terminated``/``truncated`` are scalar bools per environment (per twin).

Subclasses implement ``reset_env``, ``step_env``, ``default_params`` and the spaces. Methods are
plain functions (no ``jax.jit`` on methods): jit the outermost rollout or training run.
For batches of twins use :class:`dtwin_jax.envs.wrappers.VecEnv`, which resets only when some
twin's episode has ended instead of computing a reset every step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

Params = Any
State = Any
Obs = Any


@struct.dataclass
class AgentObs:
    """Observation of a multi-agent env, agents stacked on the leading axis.

    Fields:
        features: ``[A, D]`` float32, each agent's observation vector.
        action_mask: ``[A, N]`` bool, which of the ``N`` discrete actions are legal now.
        agent_mask: ``[A]`` bool, which agents exist now (padding is False).
    """

    features: chex.Array
    action_mask: chex.Array
    agent_mask: chex.Array


def tree_select(pred: chex.Array, on_true: Any, on_false: Any) -> Any:
    """``where(pred, a, b)`` leaf by leaf over two pytrees of one structure (scalar ``pred``)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class Environment(ABC):
    """A single twin: pure ``reset``/``step`` over explicit state and params."""

    #: number of agents on the leading axis of obs/reward (1 for a single-agent env)
    num_agents: int = 1

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    @abstractmethod
    def default_params(self) -> Params:
        """The env's default :class:`Params` (a flax struct dataclass)."""

    @abstractmethod
    def reset_env(self, key: chex.PRNGKey, params: Params) -> tuple[Obs, State]:
        """Start an episode without defaulting params."""

    @abstractmethod
    def step_env(
        self, key: chex.PRNGKey, state: State, action: chex.Array, params: Params
    ) -> tuple[Obs, State, chex.Array, chex.Array, chex.Array, dict]:
        """One step without auto-reset; same returns as :meth:`step` minus ``final_observation``."""

    def reset_from(self, key: chex.PRNGKey, state: State, params: Params) -> tuple[Obs, State]:
        """Start the next episode after one that ended in ``state``: auto-resets call this.

        Defaults to :meth:`reset_env`; envs override it to carry something over episodes
        (for example a mobility model's trajectory bank).
        """
        return self.reset_env(key, params)

    @abstractmethod
    def observation_space(self, params: Params):
        """Space of one agent's observation features."""

    @abstractmethod
    def action_space(self, params: Params):
        """Space of one agent's action."""

    def reset(self, key: chex.PRNGKey, params: Params | None = None) -> tuple[Obs, State]:
        """Start an episode. ``params`` defaults to :attr:`default_params`."""
        return self.reset_env(key, self.default_params if params is None else params)

    def step(
        self, key: chex.PRNGKey, state: State, action: chex.Array, params: Params | None = None
    ) -> tuple[Obs, State, chex.Array, chex.Array, chex.Array, dict]:
        """Advance one step and auto-reset an episode that ended (see module docstring)."""
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs, state_next, reward, terminated, truncated, info = self.step_env(
            key_step, state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        obs_reset, state_reset = self.reset_from(key_reset, state_next, params)
        info = dict(info, final_observation=obs)
        obs = tree_select(done, obs_reset, obs)
        state_next = tree_select(done, state_reset, state_next)
        return obs, state_next, reward, terminated, truncated, info


class MultiAgentEnv(Environment):
    """Agents stacked on a leading axis: ``obs`` is :class:`AgentObs`, ``reward`` is ``[A]``.

    ``info["agent_mask"]`` (``[A]`` bool) says which agents exist after the step; every agent
    shares the same action space (one discrete choice each), given by :meth:`action_space`.
    """

    num_agents: int

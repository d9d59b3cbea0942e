"""PettingZoo adapter: every multi-agent dtwin_jax env as a ``pettingzoo.ParallelEnv``
(optional extra: ``pip install "dtwin_jax[gym]"``).

``all_parallel_envs()`` maps each registered multi-agent id to a constructor
``f(params=None, **constructor_kwargs) -> DtwinParallelEnv``.

Agents are the env's agent slots, named by what they are (``user_<i>`` for
``association-v0``, ``bs_<i>`` for ``dnt-sync-v0``, ``agent_<i>`` otherwise);
``possible_agents`` lists every slot. Observations are the agents' ``features`` rows
(float32 NumPy), actions are converted to the env's dtype, spaces are the Gymnasium spaces of
:func:`dtwin_jax.envs.wrappers.gymnasium.to_gymnasium_space` (one cached object per agent),
and ``infos[agent]`` holds its ``action_mask`` (discrete spaces) and, for cooperative envs,
``team_reward``.

Live agents (PettingZoo's dead-agent rules). ``agents`` holds the slots whose
``agent_mask`` is True. A slot that becomes inactive (a user leaves) is returned once more,
with ``terminated`` True and its reward for the step, and then leaves ``agents``; PettingZoo
forbids reviving it, so a new user that later arrives in the same slot plays by the fallback
rule until the next episode. A slot that becomes active for the first time joins ``agents``
(returned with reward 0). When the episode ends (the env's ``terminated``/``truncated``)
every acting agent gets that flag and ``agents`` is empty: call ``reset``.

Fallback rule: slots that are not in ``agents``, and live agents missing from the action
dict, take a uniformly random legal action (their value does not matter for inactive
slots). Actions given for agents that are not live are ignored.

Seeds as in the Gymnasium adapter: ``reset(seed=s)`` is a fresh twin from
``jax.random.PRNGKey(s)``; ``reset()`` continues the twin with its next episode
(``reset_from``). ``options`` are ignored. ``reset``/``step`` are jitted once per instance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from pettingzoo import ParallelEnv

from dtwin_jax.envs import spaces as dt_spaces
from dtwin_jax.envs.base import Environment, MultiAgentEnv
from dtwin_jax.envs.registry import env_class, registered_envs
from dtwin_jax.envs.wrappers.gymnasium import (
    MAX_SEED,
    as_action,
    check_seed,
    random_policy,
    resolve_env,
    resolve_params,
    to_gymnasium_space,
)

#: env class name -> agent name prefix (others: ``"agent"``)
AGENT_PREFIX = {"AssociationEnv": "user", "DntSyncEnv": "bs"}


class DtwinParallelEnv(ParallelEnv):
    """A multi-agent dtwin_jax env as a PettingZoo ``ParallelEnv`` (module docstring).

    Args:
        env: a registered multi-agent id (built with ``env_kwargs``) or a ``MultiAgentEnv``.
        params: ``None`` (defaults), a dict of overrides or a params struct.
        render_mode: must be None.
    """

    metadata = {"render_modes": [], "name": "dtwin_jax"}

    def __init__(self, env: str | Environment, *, params=None, render_mode: str | None = None,
                 **env_kwargs):
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None")
        self.render_mode = None
        self.dtwin_env = resolve_env(env, env_kwargs)
        if not isinstance(self.dtwin_env, MultiAgentEnv):
            raise ValueError(f"env={env!r} is a single-agent env; PettingZoo needs a "
                             f"multi-agent one ({sorted(all_parallel_envs())})")
        self.params = resolve_params(self.dtwin_env, params)
        self.metadata = dict(self.metadata, name=f"dtwin_jax/{self.dtwin_env.name}")
        prefix = AGENT_PREFIX.get(type(self.dtwin_env).__name__, "agent")
        self.possible_agents = [f"{prefix}_{i}" for i in range(self.dtwin_env.num_agents)]
        self._index = {name: i for i, name in enumerate(self.possible_agents)}
        self._space = self.dtwin_env.action_space(self.params)
        obs_space = self.dtwin_env.observation_space(self.params)
        self._action_spaces = {a: to_gymnasium_space(self._space) for a in self.possible_agents}
        self._obs_spaces = {a: to_gymnasium_space(obs_space) for a in self.possible_agents}
        self._fallback = random_policy(self.dtwin_env)
        self._reset_fresh = jax.jit(self._pure_reset_fresh)
        self._reset_next = jax.jit(self._pure_reset_next)
        self._step = jax.jit(self._pure_step)
        self.agents = []
        self._key = None
        self._carry = None
        self._finished = set()

    def observation_space(self, agent: str):
        """The (cached) observation space of ``agent``."""
        return self._obs_spaces[self._check_agent(agent)]

    def action_space(self, agent: str):
        """The (cached) action space of ``agent``."""
        return self._action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in self._index:
            raise ValueError(f"agent={agent!r} is not one of possible_agents "
                             f"({self.possible_agents[0]} ... {self.possible_agents[-1]})")
        return agent

    # ------------------------------------------------------------------ pure functions
    def _pure_reset_fresh(self, key, params):
        key, sub = jax.random.split(key)
        obs, state = self.dtwin_env.reset_env(sub, params)
        return key, obs, state

    def _pure_reset_next(self, key, state, params):
        key, sub = jax.random.split(key)
        obs, state = self.dtwin_env.reset_from(sub, state, params)
        return key, obs, state

    def _pure_step(self, key, obs, state, action, given, params):
        """Step with ``action [A, ...]`` where ``given [A]``, the fallback elsewhere."""
        key, k_fallback, sub = jax.random.split(key, 3)
        fallback = self._fallback(k_fallback, obs, state, params)
        given = given.reshape(given.shape + (1,) * (action.ndim - 1))
        action = jnp.where(given, action, jnp.asarray(fallback, action.dtype))
        obs, state, reward, terminated, truncated, info = self.dtwin_env.step_env(
            sub, state, action, params)
        return key, obs, state, reward, terminated, truncated, info.get("team_reward")

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Fresh twin with a seed, else the twin's next episode. Returns
        ``(observations, infos)`` keyed by the live agents."""
        if seed is not None or self._carry is None:
            if seed is None:
                seed = int(np.random.default_rng().integers(MAX_SEED + 1))
            key = jax.random.PRNGKey(check_seed("seed", seed))
            self._key, obs, state = self._reset_fresh(key, self.params)
        else:
            self._key, obs, state = self._reset_next(self._key, self._carry[1], self.params)
        self._carry = (obs, state)
        self._finished = set()
        features, mask, live = self._host_obs(obs)
        self.agents = [a for a, i in self._index.items() if live[i]]
        return ({a: features[self._index[a]] for a in self.agents},
                {a: self._agent_info(mask, None, self._index[a]) for a in self.agents})

    def step(self, actions: dict):
        """Step with ``actions`` (agent name -> action). Returns ``(observations, rewards,
        terminations, truncations, infos)`` keyed by the agents that acted and those that
        joined."""
        if self._carry is None or not self.agents:
            raise RuntimeError("step() needs live agents: call reset() first (and after the "
                               "episode ended)")
        full = np.zeros((self.dtwin_env.num_agents, *self._space.shape),
                        np.int32 if isinstance(self._space, dt_spaces.MASKED_SPACES)
                        else np.float32)
        given = np.zeros(self.dtwin_env.num_agents, bool)
        live = set(self.agents)
        for agent, action in actions.items():
            if self._check_agent(agent) in live:
                i = self._index[agent]
                full[i] = as_action(self._space, action, name=f"actions[{agent!r}]")
                given[i] = True
        out = self._step(self._key, *self._carry, full, given, self.params)
        self._key, obs, state = out[:3]
        self._carry = (obs, state)
        reward, terminated, truncated, team = jax.tree.map(np.array, jax.device_get(out[3:]))
        features, mask, now_live = self._host_obs(obs)
        ended = bool(terminated) or bool(truncated)
        acting = list(self.agents)
        left = {a for a in acting if not now_live[self._index[a]]}
        joined = [] if ended else [
            a for a, i in self._index.items()
            if now_live[i] and a not in live and a not in self._finished]
        self._finished |= left
        self.agents = [] if ended else [
            a for a in self.possible_agents if (a in live and a not in left) or a in joined]
        keys = acting + joined
        observations = {a: features[self._index[a]] for a in keys}
        rewards = {a: float(reward[self._index[a]]) if a in live else 0.0 for a in keys}
        terminations = {a: bool(terminated) or a in left for a in keys}
        truncations = {a: bool(truncated) for a in keys}
        infos = {a: self._agent_info(mask, team, self._index[a]) for a in keys}
        return observations, rewards, terminations, truncations, infos

    def _host_obs(self, obs):
        """NumPy ``(features [A, D] float32, action_mask or None, agent_mask [A])``."""
        features, mask, live = jax.device_get((obs.features, obs.action_mask, obs.agent_mask))
        return np.array(features, np.float32), (None if mask is None else np.array(mask)), live

    @staticmethod
    def _agent_info(mask, team, i: int) -> dict:
        info = {}
        if mask is not None:
            info["action_mask"] = mask[i].copy()
        if team is not None:
            info["team_reward"] = float(team)
        return info


def _is_multi_agent(env_id: str) -> bool:
    """Whether the class registered as ``env_id`` is a ``MultiAgentEnv`` (imports it, builds
    nothing)."""
    return issubclass(env_class(env_id), MultiAgentEnv)


def all_parallel_envs() -> dict[str, Callable[..., DtwinParallelEnv]]:
    """Registered multi-agent id -> constructor ``f(params=None, **constructor_kwargs)``."""
    return {env_id: functools.partial(DtwinParallelEnv, env_id)
            for env_id in registered_envs() if _is_multi_agent(env_id)}

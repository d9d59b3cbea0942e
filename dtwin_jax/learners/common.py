"""Parts every learner shares: the rollout collector, the agent view, masked means, episode
statistics and ``info`` metrics.

A learner provides a *policy* and scans :func:`env_step` over time::

    policy(key, view: AgentView, first [E] bool, hidden)
        -> (raw [E, A, ...], env_action [E, A, ...], extras, hidden)

``raw`` is what the learner stores and scores (a sample of its distribution, or an
epsilon-greedy choice over Q-values), ``env_action [E, A, ...]`` what the env receives (equal
to ``raw`` except for squashed continuous actions), ``extras`` a dict of ``[E, A]`` arrays to
keep (PPO: ``log_prob``, ``value``), ``hidden`` a recurrent state (``None`` if none) that the
policy must restart where ``first`` is set (the observation starts an episode; see
:class:`~dtwin_jax.learners.nets.ResetGRU`).

The collector steps a :class:`~dtwin_jax.envs.wrappers.LogWrapper` around a
:class:`~dtwin_jax.envs.wrappers.VecEnv` of ``E`` twins, and returns a :class:`Step` with the
agent axis explicit (a single-agent env is one agent, always live) and the *true* next
observation (``info["final_observation"]``, before any auto-reset) for bootstrapping: PPO's
value of a truncated episode's last state, DQN's and VDN's targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dtwin_jax.envs.base import Environment, MultiAgentEnv
from dtwin_jax.envs.wrappers import LogWrapper, VecEnv


class AgentView(NamedTuple):
    """A batch of observations with the agent axis explicit.

    ``features [E, A, D]`` float32, ``action_mask [E, A, *mask_shape]`` bool or ``None``
    (continuous spaces, or a single-agent env), ``live [E, A]`` bool (agents that exist).
    """

    features: jax.Array
    action_mask: jax.Array | None
    live: jax.Array


def agent_view(obs, multi: bool) -> AgentView:
    """The :class:`AgentView` of a batch of observations (one leading batch axis).

    A multi-agent obs (:class:`~dtwin_jax.envs.base.AgentObs`) is used as is; a single-agent
    obs ``[E, ...]`` becomes one agent with flattened features ``[E, 1, D]``, no mask, live.
    """
    if multi:
        return AgentView(obs.features.astype(jnp.float32), obs.action_mask, obs.agent_mask)
    feats = jnp.reshape(obs, (obs.shape[0], 1, -1)).astype(jnp.float32)
    return AgentView(feats, None, jnp.ones(feats.shape[:2], bool))


def masked_mean(x: jax.Array, mask: jax.Array, axis=None, keepdims: bool = False) -> jax.Array:
    """Mean of ``x`` over the entries where ``mask`` (along ``axis``; all axes if ``None``);
    0 where nothing is selected. Masked-out entries may hold any finite value."""
    total = jnp.where(mask, x, 0.0).sum(axis=axis, keepdims=keepdims)
    return total / jnp.maximum(mask.sum(axis=axis, keepdims=keepdims), 1)


class Collector(NamedTuple):
    """The collector's carry: ``env_state`` (a :class:`~dtwin_jax.envs.wrappers.LogState`),
    the current ``obs`` (batched), ``first [E]`` (``obs`` starts an episode) and the
    policy's ``hidden`` state (``None`` for a feed-forward policy)."""

    env_state: Any
    obs: Any
    first: jax.Array
    hidden: Any


class Step(NamedTuple):
    """One vector step (leading ``[E, A]``; ``[T, E, A]`` once scanned).

    ``view``: the observation acted on; ``first [E]``; ``action``: the raw actions;
    ``extras``: the policy's dict; ``reward [E, A]`` float32; ``terminated [E, A]``: no
    bootstrap (the twin terminated, or the agent was live and is gone after the step);
    ``done [E, A]``: the episode (or the agent's part in it) ended, traces stop here;
    ``next_view``: the true next observation (``info["final_observation"]``).
    """

    view: AgentView
    first: jax.Array
    action: jax.Array
    extras: dict
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_view: AgentView


def make_vec_env(env: Environment, num_envs: int) -> LogWrapper:
    """``LogWrapper(VecEnv(env, num_envs))``: what :func:`env_step` steps."""
    return LogWrapper(VecEnv(env, num_envs))


def twin_batch(env: LogWrapper, env_params=None, batched: bool = False):
    """``(params [E, ...], one twin's params)`` for the ``E`` twins of ``env``.

    ``env_params``: one params struct broadcast to every twin (default: the env's), or with
    ``batched=True`` a struct whose leaves carry the leading ``[E]`` axis (heterogeneous twins,
    e.g. from :func:`dtwin_jax.parallel.twin_params`); ``ValueError`` otherwise.
    """
    inner = env.inner
    if env_params is None:
        env_params = inner.env.default_params
    if not batched:
        env_params = inner.batch_params(env_params)
    for leaf in jax.tree.leaves(env_params):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != inner.num_envs:
            raise ValueError(f"batched env_params leaves need a leading axis of num_envs="
                             f"{inner.num_envs}; got a leaf of shape {jnp.shape(leaf)}")
    return env_params, jax.tree.map(lambda x: x[0], env_params)


def init_collector(env: LogWrapper, key: jax.Array, params, hidden=None) -> Collector:
    """Reset every twin of ``env``; all observations are episode starts."""
    obs, state = env.reset(key, params)
    return Collector(state, obs, jnp.ones(env.batch_shape, bool), hidden)


def env_step(
    env: LogWrapper,
    params,
    policy: Callable,
    collector: Collector,
    key: jax.Array,
    info_keys: Sequence[str] = (),
    info_agent_keys: frozenset[str] = frozenset(),
    twin_info_keys: Sequence[str] = (),
) -> tuple[Collector, tuple[Step, dict]]:
    """One step of every twin under ``policy`` (see module docstring); ``lax.scan``-able.

    Returns the next :class:`Collector` and ``(step, stats)``; ``stats`` holds
    ``returned_episode [E]``, ``returned_episode_returns [E]`` (from the
    :class:`~dtwin_jax.envs.wrappers.LogWrapper`) and, for each of ``info_keys``, its mean
    over the twins this step (over ``info["agent_mask"]`` for ``info_agent_keys``). Entries
    named in ``twin_info_keys`` are also kept unreduced (``[E, ...]``), under
    ``stats["per_twin"][key]`` (VDN reads ``info["team_reward"]`` of every twin so).
    """
    multi = env.multi
    k_act, k_step = jax.random.split(key)
    view = agent_view(collector.obs, multi)
    raw, env_action, extras, hidden = policy(k_act, view, collector.first, collector.hidden)
    obs, env_state, reward, term, trunc, info = env.step(
        k_step, collector.env_state, env_action if multi else env_action[:, 0], params
    )
    next_view = agent_view(info["final_observation"], multi)
    reward = jnp.asarray(reward, jnp.float32).reshape(view.live.shape)
    agent_term = term[:, None] | (view.live & ~next_view.live)
    done_env = term | trunc
    step = Step(view, collector.first, raw, extras, reward, agent_term,
                agent_term | done_env[:, None], next_view)
    stats = {
        "returned_episode": info["returned_episode"],
        "returned_episode_returns": info["returned_episode_returns"],
    }
    for k in info_keys:
        x = jnp.asarray(info[k], jnp.float32)
        stats[k] = masked_mean(x, info["agent_mask"]) if k in info_agent_keys else x.mean()
    if twin_info_keys:
        stats["per_twin"] = {k: info[k] for k in twin_info_keys}
    return Collector(env_state, obs, done_env, hidden), (step, stats)


def episode_stats(stats: dict, previous: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(episodes, mean_return)`` over a scanned rollout's ``stats`` (``[T, E]`` entries).

    ``episodes``: count of episodes that ended (float32); ``mean_return``: mean return of
    those episodes, or ``previous`` if none ended.
    """
    ended = stats["returned_episode"]
    episodes = ended.sum().astype(jnp.float32)
    total = jnp.where(ended, stats["returned_episode_returns"], 0.0).sum()
    return episodes, jnp.where(episodes > 0, total / jnp.maximum(episodes, 1.0), previous)


def dummy_action(env: Environment, params, batch: int) -> jax.Array:
    """Zeros of the env's action shape and dtype for ``batch`` twins (``[batch, A, ...]`` for
    a multi-agent env): for abstract evaluation only."""
    space = env.action_space(params)
    lead = (batch, env.num_agents) if isinstance(env, MultiAgentEnv) else (batch,)
    return jnp.zeros((*lead, *space.shape), space.dtype)


def validate_info_keys(info_keys: Sequence[str], reserved: Sequence[str]) -> tuple[str, ...]:
    """``info_keys`` as a tuple of str that clash with none of the learner's metric names
    ``reserved`` (for configs' ``__post_init__``); ``TypeError``/``ValueError`` otherwise."""
    info_keys = tuple(info_keys)
    for key in info_keys:
        if not isinstance(key, str):
            raise TypeError(f"info_keys entries must be str, got {key!r}")
        if key in reserved:
            raise ValueError(f"info_keys entry {key!r} clashes with a metric name; "
                             f"not allowed: {list(reserved)}")
    return info_keys


def check_info_keys(env: LogWrapper, params, info_keys: Sequence[str]) -> frozenset[str]:
    """Check that ``info_keys`` are in the env's ``info`` (abstractly: nothing runs).

    ``params`` are batched (leading ``[E]``). Returns the keys that are per-agent (shaped like
    ``info["agent_mask"]``), which :func:`env_step` averages over live agents. Raises
    ``ValueError`` naming the missing keys.
    """
    if not info_keys:
        return frozenset()
    one_params = jax.tree.map(lambda x: x[0], params)
    batch = env.batch_shape[0]

    def one_step(key):
        obs, state = env.reset(key, params)
        return env.step(key, state, dummy_action(env.env, one_params, batch), params)[-1]

    shapes = jax.eval_shape(one_step, jax.random.PRNGKey(0))
    missing = [k for k in info_keys if k not in shapes]
    if missing:
        raise ValueError(f"info_keys {missing} are not in the env's info; available: "
                         f"{sorted(shapes)}")
    if not (env.multi and "agent_mask" in shapes):
        return frozenset()
    agent_shape = shapes["agent_mask"].shape
    return frozenset(k for k in info_keys if shapes[k].shape == agent_shape)

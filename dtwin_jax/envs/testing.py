"""A reusable "does it run" check for any environment of our API, for all four space kinds.

``check_env(env)`` runs a jitted random episode (legal actions only), and checks the spaces
(observations inside the observation space, masks of the shape of the action space's
convention, sampled actions legal), shapes, finiteness of everything returned, determinism
under a fixed key, the presence of the ``info`` keys the API promises, and that ``reset``
and ``step`` trace exactly once. ``tests/envs/test_conformance.py`` runs it (and more) on
every registered env.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv


def obs_action_mask(env: Environment, obs) -> jax.Array | None:
    """The action mask an observation carries: ``AgentObs.action_mask`` (``[A, *mask_shape]``)
    for multi-agent envs, an ``action_mask`` attribute of a single-agent observation, or
    None (every value legal)."""
    return getattr(obs, "action_mask", None)


def random_action(env: Environment, key: chex.PRNGKey, obs, params) -> jax.Array:
    """A uniformly random legal action for every agent of ``env`` given its observation."""
    space = env.action_space(params)
    mask = obs_action_mask(env, obs)
    if isinstance(env, MultiAgentEnv):
        keys = jax.random.split(key, env.num_agents)
        if mask is None:
            return jax.vmap(space.sample)(keys)
        return jax.vmap(space.sample)(keys, mask)
    return space.sample(key, mask)


def action_is_legal(env: Environment, action: jax.Array, obs, params) -> jax.Array:
    """Whether every agent's ``action`` is a value of the space, legal under the obs mask."""
    space = env.action_space(params)
    mask = obs_action_mask(env, obs)
    if isinstance(env, MultiAgentEnv):
        return jax.vmap(space.contains, in_axes=(0, None if mask is None else 0))(
            action, mask
        ).all()
    return space.contains(action, mask)


def _rollout_fn(env: Environment, num_steps: int):
    def rollout(key, params):
        key_reset, key_run = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, key_t):
            obs, state = carry
            k_act, k_step = jax.random.split(key_t)
            action = random_action(env, k_act, obs, params)
            legal = action_is_legal(env, action, obs, params)
            obs, state, reward, term, trunc, info = env.step(k_step, state, action, params)
            return (obs, state), (obs, reward, term, trunc, info, legal)

        (last_obs, _), traj = jax.lax.scan(body, (obs, state), jax.random.split(key_run,
                                                                                num_steps))
        return last_obs, traj

    return rollout


def check_env(env: Environment, params=None, num_steps: int = 64, seed: int = 0) -> tuple:
    """Run ``env`` for ``num_steps`` random steps and assert the API's promises.

    Returns the stacked trajectory ``(obs, reward, terminated, truncated, info)`` for
    env-specific follow-up checks.
    """
    params = env.default_params if params is None else params
    chex.clear_trace_counter()
    reset = jax.jit(chex.assert_max_traces(env.reset, n=1))
    step = jax.jit(chex.assert_max_traces(env.step, n=1))
    key = jax.random.PRNGKey(seed)
    for k in jax.random.split(key, 2):  # several calls, one trace each
        obs, state = reset(k, params)
    _check_obs(env, obs, params)
    for k in jax.random.split(key, 3):  # step's output state must feed step without a retrace
        action = random_action(env, k, obs, params)
        obs, state, reward, term, trunc, info = step(k, state, action, params)
    _check_obs(env, obs, params)
    assert "final_observation" in info, "info lacks final_observation"
    assert jnp.shape(term) == () and jnp.shape(trunc) == (), "terminated/truncated must be scalars"
    if isinstance(env, MultiAgentEnv):
        assert jnp.shape(reward) == (env.num_agents,), f"reward shape {jnp.shape(reward)}"
        assert "agent_mask" in info, "multi-agent info lacks agent_mask"
        if "team_reward" in info:
            assert jnp.shape(info["team_reward"]) == (), "team_reward must be a scalar"
    else:
        assert jnp.shape(reward) == (), f"reward shape {jnp.shape(reward)}"

    rollout = jax.jit(_rollout_fn(env, num_steps))
    last_obs, (*traj, legal) = rollout(key, params)
    traj = tuple(traj)
    chex.assert_tree_all_finite(traj)
    assert bool(np.all(legal)), "a sampled action was not legal under its observation's mask"
    _check_obs(env, last_obs, params)
    again = rollout(key, params)[1][:-1]
    chex.assert_trees_all_equal(traj, tuple(again))
    return traj


def _check_obs(env: Environment, obs, params) -> None:
    space = env.observation_space(params)
    act_space = env.action_space(params)
    mask = obs_action_mask(env, obs)
    mask_shape = act_space.mask_shape
    if isinstance(env, MultiAgentEnv):
        assert isinstance(obs, AgentObs), f"multi-agent obs must be AgentObs, got {type(obs)}"
        a = env.num_agents
        assert obs.features.shape == (a, *space.shape), f"features shape {obs.features.shape}"
        assert obs.agent_mask.shape == (a,) and obs.agent_mask.dtype == jnp.bool_
        assert bool(jax.vmap(space.contains)(obs.features).all()), "features outside the space"
        mask_shape = None if mask_shape is None else (a, *mask_shape)
    else:
        features = getattr(obs, "features", obs)
        assert bool(space.contains(features)), "observation outside its space"
    if mask_shape is None:
        assert mask is None, "a continuous action space takes no action mask"
        return
    if mask is None:
        return
    assert mask.shape == mask_shape and mask.dtype == jnp.bool_, (
        f"action_mask has shape {mask.shape} and dtype {mask.dtype}; expected {mask_shape} bool"
    )
    has_legal = np.asarray(mask).any(-1)  # [A] / [A, F] / [] / [F]
    if isinstance(env, MultiAgentEnv):
        has_legal = has_legal.reshape(env.num_agents, -1).all(-1)[np.asarray(obs.agent_mask)]
    assert np.all(has_legal), "an agent (or a factor) has no legal action"

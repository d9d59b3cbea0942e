"""A reusable "does it run" check for any environment of our API.

``check_env(env)`` runs a jitted random episode (legal actions only), and checks the spaces,
shapes, finiteness of everything returned, determinism under a fixed key, the presence of the
``info`` keys the API promises, and that ``reset`` and ``step`` trace exactly once.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs.base import AgentObs, Environment, MultiAgentEnv


def random_action(env: Environment, key: chex.PRNGKey, obs, params) -> jax.Array:
    """A uniformly random legal action for every agent of ``env`` given its observation."""
    space = env.action_space(params)
    if isinstance(env, MultiAgentEnv):
        keys = jax.random.split(key, env.num_agents)
        return jax.vmap(space.sample)(keys, obs.action_mask)
    return space.sample(key)


def _rollout_fn(env: Environment, num_steps: int):
    def rollout(key, params):
        key_reset, key_run = jax.random.split(key)
        obs, state = env.reset(key_reset, params)

        def body(carry, key_t):
            obs, state = carry
            k_act, k_step = jax.random.split(key_t)
            action = random_action(env, k_act, obs, params)
            obs, state, reward, term, trunc, info = env.step(k_step, state, action, params)
            return (obs, state), (obs, reward, term, trunc, info)

        _, traj = jax.lax.scan(body, (obs, state), jax.random.split(key_run, num_steps))
        return obs, traj

    return rollout


def check_env(env: Environment, params=None, num_steps: int = 64, seed: int = 0) -> dict:
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
    for k in jax.random.split(key, 3):  # step's output state must feed step without a retrace
        action = random_action(env, k, obs, params)
        obs, state, reward, term, trunc, info = step(k, state, action, params)
    _check_obs(env, obs, params)
    assert "final_observation" in info, "info lacks final_observation"
    assert jnp.shape(term) == () and jnp.shape(trunc) == (), "terminated/truncated must be scalars"
    if isinstance(env, MultiAgentEnv):
        assert jnp.shape(reward) == (env.num_agents,), f"reward shape {jnp.shape(reward)}"
        assert "agent_mask" in info, "multi-agent info lacks agent_mask"
    else:
        assert jnp.shape(reward) == (), f"reward shape {jnp.shape(reward)}"

    rollout = jax.jit(_rollout_fn(env, num_steps))
    last_obs, traj = rollout(key, params)
    chex.assert_tree_all_finite(traj)
    _check_obs(env, last_obs, params)
    again = rollout(key, params)
    chex.assert_trees_all_equal(traj, again[1])
    return traj


def _check_obs(env: Environment, obs, params) -> None:
    space = env.observation_space(params)
    if isinstance(env, MultiAgentEnv):
        assert isinstance(obs, AgentObs), f"multi-agent obs must be AgentObs, got {type(obs)}"
        a = env.num_agents
        assert obs.features.shape == (a, *space.shape), f"features shape {obs.features.shape}"
        n = env.action_space(params).n
        assert obs.action_mask.shape == (a, n) and obs.action_mask.dtype == jnp.bool_
        assert obs.agent_mask.shape == (a,) and obs.agent_mask.dtype == jnp.bool_
        live = np.asarray(obs.agent_mask)
        assert np.asarray(obs.action_mask)[live].any(-1).all(), "a live agent has no legal action"
        assert bool(jax.vmap(space.contains)(obs.features).all()), "features outside the space"
    else:
        assert bool(space.contains(obs)), "observation outside its space"

"""Every registered env against the API: spaces, finiteness, determinism, one trace, auto-reset,
x64, jit with params omitted, default params valid, checked mode quiet on legal play.

A new env is covered by its registry line; give it small constructor sizes (and params that
end an episode within ``NUM_STEPS``) in ``SMALL`` below, or it runs with its defaults.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs import make, registered_envs
from dtwin_jax.envs.base import MultiAgentEnv
from dtwin_jax.envs.testing import check_env, random_action
from dtwin_jax.envs.wrappers import CheckedEnv, checked

NUM_STEPS = 12

#: env id -> (constructor kwargs, make_params overrides); an id without an entry uses defaults
SMALL = {
    "association-v0": (
        dict(num_bs=4, num_macro=1, max_users=8, num_candidates=2, mobility="waypoint",
             area_m=200.0, shadow_cell_m=20.0),
        dict(num_users=6, episode_length=5, churn=0.1),
    ),
    "dnt-sync-v0": ({}, dict(episode_length=5)),
    "edge-retrain-v0": (dict(num_users=4, full_steps=20, full_samples=32, retraining="real_only"),
                        dict(episode_length=5, frame_length=2)),
    "slicing-v0": (dict(num_users=10, num_slots=20), dict(episode_length=5)),
}

IDS = [i for i in registered_envs() if not i.startswith("counter-test")]


def _env_and_params(env_id):
    kwargs, overrides = SMALL.get(env_id, ({}, {}))
    env = make(env_id, **kwargs)
    return env, env.make_params(**overrides)


@pytest.fixture(scope="module", params=IDS)
def env_params(request):
    return _env_and_params(request.param)


@pytest.fixture(scope="module")
def jitted(env_params):
    """The env's API functions jitted once per env (compiles are the cost of this file)."""
    env, _ = env_params
    names = ("reset", "step", "step_env", "reset_from")
    return {n: jax.jit(getattr(env, n)) for n in names}


def test_default_params_are_valid_and_make_params_rejects_unknown(env_params):
    env, params = env_params
    env.check_params(env.default_params)
    env.check_params(params)
    with pytest.raises(ValueError, match="no parameter 'not_a_field'"):
        env.make_params(not_a_field=1.0)


def test_check_env(env_params):
    env, params = env_params
    obs, reward, term, trunc, info = check_env(env, params, num_steps=NUM_STEPS)
    assert np.asarray(term | trunc).any(), "no episode ended: shorten it in SMALL"


def test_auto_reset_restarts_from_reset_from(env_params, jitted):
    """On the step an episode ends, ``step`` returns ``reset_from(key_reset, final_state)``
    and ``info["final_observation"]`` is the last observation of the finished episode."""
    env, params = env_params
    step, step_env, reset_from = jitted["step"], jitted["step_env"], jitted["reset_from"]
    obs, state = jitted["reset"](jax.random.key(0), params)
    for t in range(NUM_STEPS):
        key = jax.random.key(100 + t)
        action = random_action(env, jax.random.key(t), obs, params)
        obs_next, state_next, _, term, trunc, info = step(key, state, action, params)
        if bool(term | trunc):
            k_step, k_reset = jax.random.split(key)
            last_obs, final_state, *_ = step_env(k_step, state, action, params)
            obs_reset, state_reset = reset_from(k_reset, final_state, params)
            chex.assert_trees_all_close(info["final_observation"], last_obs)
            chex.assert_trees_all_close(obs_next, obs_reset)
            chex.assert_trees_all_close(state_next, state_reset)
            return
        obs, state = obs_next, state_next
    pytest.fail(f"no episode ended within {NUM_STEPS} steps: shorten it in SMALL")


def test_jit_with_params_omitted(env_params):
    env, _ = env_params
    obs, state = jax.jit(env.reset)(jax.random.key(0))
    action = random_action(env, jax.random.key(1), obs, env.default_params)
    out = jax.jit(env.step)(jax.random.key(2), state, action)
    chex.assert_tree_all_finite(out[:5])


def test_wrong_action_shape_and_dtype_fail_at_trace_time(env_params, jitted):
    env, params = env_params
    obs, state = jitted["reset"](jax.random.key(0), params)
    action = random_action(env, jax.random.key(1), obs, params)
    step = jitted["step"]
    with pytest.raises(ValueError, match="action has shape"):
        step(jax.random.key(2), state, action[..., :1] if action.ndim else action[None], params)
    wrong = jnp.float32 if jnp.issubdtype(action.dtype, jnp.integer) else jnp.int32
    with pytest.raises(TypeError, match="action has dtype"):
        step(jax.random.key(2), state, action.astype(wrong), params)


def test_checked_mode_is_quiet_on_legal_play_and_raises_on_bad_params(env_params):
    env, params = env_params
    checked_env = CheckedEnv(env)
    reset, step = checked(checked_env.reset), checked(checked_env.step)
    obs, state = reset(jax.random.key(0), params)
    for t in range(3):
        action = random_action(env, jax.random.key(t), obs, params)
        obs, state, *_ = step(jax.random.key(10 + t), state, action, params)
    field = next(n for n in ("episode_length", "num_users") if hasattr(params, n))
    bad = params.replace(**{field: jnp.asarray(-1, getattr(params, field).dtype)})
    with pytest.raises(Exception, match=field):
        reset(jax.random.key(0), bad)


def test_runs_in_x64(env_params):
    env, params = env_params
    with jax.enable_x64(True):
        obs, state = jax.jit(env.reset)(jax.random.key(0), params)
        action = random_action(env, jax.random.key(1), obs, params)
        obs, state, reward, *_ = jax.jit(env.step)(jax.random.key(2), state, action, params)
        chex.assert_tree_all_finite((obs, state, reward))
        if isinstance(env, MultiAgentEnv):
            assert obs.features.shape[0] == env.num_agents

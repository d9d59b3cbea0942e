"""LogWrapper: episode returns and lengths per twin, over a VecEnv and over a single env."""

import jax
import jax.numpy as jnp
import numpy as np
from probe_envs import CounterEnv, MaskedTeamEnv

from dtwin_jax.envs.wrappers import LogWrapper, VecEnv


def test_vec_returns_and_lengths_match_python_counts():
    horizons = np.array([2, 3, 5])
    vec = VecEnv(CounterEnv(), 3)
    params = vec.batch_params().replace(horizon=jnp.asarray(horizons))
    env = LogWrapper(vec)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(env.step)
    ret, length = np.zeros(3), np.zeros(3, int)
    last_ret, last_len = np.zeros(3), np.zeros(3, int)
    for t in range(12):
        action = jnp.asarray([t % 2, 1, 1])  # twin 0 scores on odd steps only
        obs, state, reward, term, trunc, info = step(jax.random.PRNGKey(t), state, action, params)
        ret += np.asarray(reward)
        length += 1
        done = np.asarray(term | trunc)
        last_ret = np.where(done, ret, last_ret)
        last_len = np.where(done, length, last_len)
        ret, length = np.where(done, 0.0, ret), np.where(done, 0, length)
        np.testing.assert_array_equal(info["returned_episode"], done)
        np.testing.assert_allclose(info["returned_episode_returns"], last_ret)
        np.testing.assert_array_equal(info["returned_episode_lengths"], last_len)
        assert "final_observation" in info
    np.testing.assert_array_equal(last_len, horizons)


def test_single_multi_agent_env_uses_mean_over_live_agents():
    env = LogWrapper(MaskedTeamEnv())  # 3 live of 4; reward 1 per live agent choosing 1
    obs, state = env.reset(jax.random.PRNGKey(0))
    assert env.batch_shape == () and state.episode_return.shape == ()
    action = jnp.array([1, 1, 0, 1])
    for t in range(5):
        obs, state, reward, term, trunc, info = env.step(jax.random.PRNGKey(t), state, action)
    assert bool(info["returned_episode"])
    np.testing.assert_allclose(info["returned_episode_returns"], 5 * 2 / 3, rtol=1e-6)
    assert int(info["returned_episode_lengths"]) == 5

"""PPO on one probe env per action kind: it must beat a uniform random policy clearly."""

import jax
import numpy as np
import pytest
from probe_envs import (
    BOX_TARGET,
    SHARE_TARGET,
    BoxTargetEnv,
    MultiDiscreteBanditEnv,
    ShareTargetEnv,
)

from dtwin_jax.learners.ppo import PPOConfig, make_policy_fn, make_train


def _config(num_updates, **kw):
    base = dict(num_envs=4, num_steps=8, hidden_sizes=(16,), num_minibatches=2, lr=1e-2,
                ent_coef=0.0)
    base.update(kw)
    return PPOConfig(total_timesteps=base["num_envs"] * base["num_steps"] * num_updates, **base)


def test_multidiscrete_masked_factors_learn_best_legal_values():
    env = MultiDiscreteBanditEnv()
    config = _config(40, info_keys=("illegal",))
    runner, metrics = jax.jit(make_train(env, None, config))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(metrics["illegal"], 0.0)
    assert float(metrics["reward"][-1]) > 1.8  # random legal: 1.0, best legal: 2.0
    act = make_policy_fn(config, env)
    obs, _ = env.reset(jax.random.PRNGKey(0))
    greedy = np.asarray(act(runner.train_state.params, obs, jax.random.PRNGKey(1), True))
    assert greedy.shape == (3, 2) and (greedy[:2] == [1, 1]).all()
    draws = jax.vmap(lambda k: act(runner.train_state.params, obs, k))(
        jax.random.split(jax.random.PRNGKey(2), 500))
    assert not (np.asarray(draws)[:, :, 0] == 2).any()


def test_box_squashed_gaussian_reaches_target_inside_bounds():
    env = BoxTargetEnv()
    config = _config(60)
    runner, metrics = jax.jit(make_train(env, None, config))(jax.random.PRNGKey(1))
    assert float(metrics["reward"][0]) < -0.5
    assert float(metrics["reward"][-1]) > -0.3  # uniform random: -3.5
    act = make_policy_fn(config, env)
    a = np.asarray(act(runner.train_state.params, np.ones(1), jax.random.PRNGKey(0), True))
    np.testing.assert_allclose(a, BOX_TARGET, atol=0.25)
    draws = np.asarray(jax.vmap(lambda k: act(runner.train_state.params, np.ones(1), k))(
        jax.random.split(jax.random.PRNGKey(3), 500)))
    assert draws.shape == (500, 2) and (draws >= -1.0).all() and (draws <= 2.0).all()


def test_simplex_dirichlet_learns_target_shares_multi_agent():
    env = ShareTargetEnv()
    config = _config(60)
    runner, metrics = jax.jit(make_train(env, None, config))(jax.random.PRNGKey(2))
    assert float(metrics["reward"][-1]) > -1.0  # uniform Dirichlet: -2.93
    assert float(metrics["reward"][-1]) > float(metrics["reward"][0]) + 1.0
    act = make_policy_fn(config, env)
    obs, _ = env.reset(jax.random.PRNGKey(0))
    shares = np.asarray(act(runner.train_state.params, obs, jax.random.PRNGKey(0), True))
    assert shares.shape == (2, 3)
    np.testing.assert_allclose(shares.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(shares, np.broadcast_to(SHARE_TARGET, (2, 3)), atol=0.15)


@pytest.mark.parametrize("squash_box", [1, "yes"])
def test_squash_box_must_be_bool(squash_box):
    with pytest.raises(TypeError, match="squash_box"):
        _config(2, squash_box=squash_box)

"""Learned twin: env API and validation, fitting to logged transitions of a probe env, and the
twin-enhanced DQN loop as one jitted, vmapped program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import CounterEnv, MultiDiscreteBanditEnv

from dtwin_jax.learners import buffer, dqn
from dtwin_jax.twins import world_model as wm

SMALL = wm.WorldModelConfig(lstm_size=8, reward_hidden=(16,), seq_len=4, batch_size=16,
                            fit_steps=300, num_start_obs=8, episode_length=5, lr=1e-2)


def test_config_and_params_validation():
    with pytest.raises(ValueError, match="seq_len"):
        wm.WorldModelConfig(seq_len=0)
    with pytest.raises(TypeError, match="noise"):
        wm.WorldModelConfig(noise=1)
    twin = wm.LearnedTwinEnv.of(CounterEnv(), None, SMALL)
    with pytest.raises(ValueError, match="obs_std"):
        twin.make_params(obs_std=-jnp.ones(1))
    with pytest.raises(ValueError, match="action_features"):
        wm.LearnedTwinEnv(np.zeros(1), np.ones(1), 3, SMALL, np.ones((2, 2)))
    with pytest.raises(TypeError, match="MultiDiscrete"):
        wm.LearnedTwinEnv.of(MultiDiscreteBanditEnv(), None, SMALL)


def test_twin_env_steps_within_bounds_and_truncates():
    twin = wm.LearnedTwinEnv.of(CounterEnv(), None, SMALL)
    params = twin.make_params(obs_std=jnp.full(1, 10.0))
    obs, state = twin.reset(jax.random.PRNGKey(0), params)

    def body(state, k):
        obs, state, r, term, trunc, info = twin.step(k, state, jnp.int32(1), params)
        return state, (obs, r, term, trunc)

    _, (obs, r, term, trunc) = jax.jit(lambda s: jax.lax.scan(
        body, s, jax.random.split(jax.random.PRNGKey(1), 12)))(state)
    assert obs.shape == (12, 1) and np.all((obs >= 0) & (obs <= 1))
    assert np.isfinite(r).all() and not term.any()
    np.testing.assert_array_equal(np.nonzero(np.asarray(trunc))[0], [4, 9])


def test_fit_recovers_counter_dynamics_and_reward():
    """Logged random-policy transitions of CounterEnv (obs t/5 -> (t+1)/5, reward 1 for action
    1): the fitted reward model ranks action 1 first and the dynamics explain the next obs."""
    env = CounterEnv()
    cfg = dqn.DQNConfig(num_envs=2, total_timesteps=400, buffer_size=400, learning_starts=400,
                        eps_start=1.0, eps_end=1.0, hidden_sizes=(8,))
    state, _ = jax.jit(dqn.make_train(env, None, cfg))(jax.random.PRNGKey(0))
    twin = wm.LearnedTwinEnv.of(env, None, SMALL)
    fitter = wm.make_fitter(twin, cfg.num_envs)
    ring = state.buffer

    @jax.jit
    def fit(key):
        fs = fitter.init(key)
        windows = fitter.windows(ring, key, 64)
        before = fitter.loss(fs.weights, windows)[0]
        fs, _ = fitter.fit(fs, ring, key, SMALL.fit_steps)
        return before, fitter.loss(fs.weights, windows)[0], fitter.twin_params(fs, ring, key)

    before, after, tparams = fit(jax.random.PRNGKey(1))
    assert after < 0.2 * before, (before, after)
    # consecutive window items are one twin's consecutive steps
    w = fitter.windows(ring, jax.random.PRNGKey(2), 8)
    same_episode = ~w.first[:, 1:]
    np.testing.assert_allclose(np.where(same_episode, w.obs[:, 1:, 0], 0),
                               np.where(same_episode, w.next_obs[:, :-1, 0], 0))
    obs = jnp.full((3, 1), 0.4)
    x = jnp.concatenate([obs, tparams.action_features], -1)
    r = twin.reward_model.apply(tparams.reward, x)
    assert int(jnp.argmax(r)) == 1 and abs(float(r[1]) - 1.0) < 0.2, r
    # the dynamics explain most of the next observation's variance (residual RMS = obs_std)
    assert float(tparams.obs_std[0]) ** 2 < 0.5 * float(jnp.var(ring.data.next_obs)), tparams
    assert tparams.start_obs.shape == (SMALL.num_start_obs, 1)
    assert isinstance(ring, buffer.FlatBufferState)


def test_twin_enhanced_loop_jits_vmaps_and_learns():
    env = CounterEnv()
    real = dqn.DQNConfig(num_envs=1, total_timesteps=120, buffer_size=120, batch_size=16,
                         learning_starts=16, lr=1e-3, gamma=0.5, target_update_every=5,
                         hidden_sizes=(16,), eps_decay_frac=0.5, double=True)
    twin = dqn.DQNConfig(num_envs=4, total_timesteps=3 * 100 * 4, buffer_size=1000,
                         batch_size=16, learning_starts=16, lr=1e-3, gamma=0.5,
                         target_update_every=5, hidden_sizes=(16,), eps_start=0.3,
                         double=True)
    loop = wm.TwinLoopConfig(num_cycles=3, real_updates=40, twin_updates=100)
    with pytest.raises(ValueError, match="num_updates"):
        wm.make_twin_train(env, None, real, twin, wm.TwinLoopConfig(2, 40, 100), SMALL)
    with pytest.raises(ValueError, match="hidden_sizes"):
        wm.make_twin_train(env, None, real, dqn.DQNConfig(num_envs=4), loop, SMALL)
    train = wm.make_twin_train(env, None, real, twin, loop, SMALL)
    (r1, r2, _), m = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 2))
    assert m["reward"].shape == (2, 120) and m["twin_reward"].shape == (2, 3, 100)
    assert m["model_loss"].shape == (2, 3) and np.isfinite(m["model_loss"]).all()
    assert int(r1.timesteps[0]) == 120
    # after the first twin phase the real agent acts well (uniform random: 1/3)
    assert float(np.asarray(m["reward"])[:, 60:].mean()) > 0.75

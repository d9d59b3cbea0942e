"""dtwin_jax.chunking: measured footprints, chunk sizes, chunked rollouts and chunked PPO."""

import jax
import numpy as np
import pytest

import dtwin_jax
from dtwin_jax import chunking
from dtwin_jax.envs.association import policies
from dtwin_jax.learners.ppo import PPOConfig, make_train
from dtwin_jax.parallel import twin_params

USERS = [3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="module")
def env():
    return dtwin_jax.make("association-v0", num_bs=7, max_users=8)


@pytest.fixture(scope="module")
def batch(env):
    return twin_params(env, num_users=USERS)


def test_rollout_of_a_twin_does_not_depend_on_the_chunk_size(env, batch):
    policy = policies.max_sinr_policy(env)
    key = jax.random.PRNGKey(3)
    runs = {c: jax.jit(lambda k, c=c: chunking.rollout_chunked(
        env, policy, batch, k, 5, c, ("throughput",)))(key) for c in (2, 4, 6)}
    assert runs[6]["reward"].shape == (5, len(USERS), 8)
    assert runs[6]["throughput"].shape == (5, len(USERS), 8)
    for c in (2, 4):  # 4 does not divide 6: the last chunk holds 2 twins
        for name, ref in runs[6].items():
            # per-twin values agree up to float32 reassociation of differently sized batches
            np.testing.assert_allclose(np.asarray(runs[c][name]), np.asarray(ref),
                                       rtol=2e-5, atol=1e-5, err_msg=f"{name}, chunk {c}")
    # twin i's active users are exactly its own user count at every step
    np.testing.assert_array_equal(np.asarray(runs[6]["agent_mask"]).sum(-1),
                                  np.broadcast_to(USERS, (5, len(USERS))))


def test_rollout_chunk_size_is_validated(env, batch):
    with pytest.raises(ValueError, match="chunk_size"):
        chunking.rollout_chunked(env, policies.max_sinr_policy(env), batch,
                                 jax.random.PRNGKey(0), 3, 7)


CFG = PPOConfig(num_envs=6, num_steps=4, total_timesteps=6 * 4 * 2, num_minibatches=2,
                update_epochs=1, hidden_sizes=(16,))


def test_one_chunk_is_make_train_exactly(env, batch):
    key = jax.random.PRNGKey(0)
    r1, m1 = jax.jit(make_train(env, batch, CFG, batched_params=True))(key)
    r2, m2 = jax.jit(chunking.make_train_chunked(env, batch, CFG, 6))(key)
    for a, b in zip(jax.tree.leaves(r1.train_state.params), jax.tree.leaves(r2.train_state.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in m1:
        np.testing.assert_array_equal(np.asarray(m1[name]), np.asarray(m2[name]))


def test_chunks_rotate_and_every_twin_steps(env, batch):
    # 3 chunks of 2 twins, 6 updates: every chunk collects 2 rollouts of 4 steps
    cfg = PPOConfig(num_envs=6, num_steps=4, total_timesteps=6 * 4 * 2, num_minibatches=2,
                    update_epochs=1, hidden_sizes=(16,))
    runner, metrics = jax.jit(chunking.make_train_chunked(env, batch, cfg, 2))(
        jax.random.PRNGKey(0))
    assert metrics["reward"].shape == (6,)
    assert np.isfinite(np.asarray(metrics["total_loss"])).all()
    steps = np.asarray(runner.collector.env_state.env_state.t)
    assert steps.shape == (3, 2)
    # every twin advanced by 8 steps (no episode of association-v0 ends this early)
    np.testing.assert_array_equal(steps, 8)


def test_chunked_training_is_validated(env, batch):
    with pytest.raises(ValueError, match="chunk_size"):
        chunking.make_train_chunked(env, batch, CFG, 4)
    # 4 updates of 2 twins cannot visit 3 chunks equally
    cfg = PPOConfig(num_envs=6, num_steps=4, total_timesteps=2 * 4 * 4, num_minibatches=2)
    with pytest.raises(ValueError, match="multiple of the 3 chunks"):
        chunking.make_train_chunked(env, batch, cfg, 2)


def test_step_footprint_is_linear_and_covers_the_state(env):
    fp = chunking.step_footprint(env, sizes=(2, 8, 32))
    _, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), env.default_params)
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    # the donated state comes back as an output: at least one state per twin, and the
    # step's temporaries are bounded (well under 10 states per twin for this env)
    assert state_bytes <= fp.per_twin_bytes < 10 * state_bytes
    # the line through 8 and 32 twins predicts the compiled bytes at 2 twins
    assert fp.totals[0] < fp.totals[1] < fp.totals[2]
    assert fp.linearity_error < 0.05
    assert fp.bytes_for(32) == pytest.approx(fp.totals[2])
    with pytest.raises(ValueError, match="increasing"):
        chunking.step_footprint(env, sizes=(8, 2))


def test_chunk_size_for_picks_the_largest_fitting_divisor():
    fp = chunking.MemoryFootprint(per_twin_bytes=100.0, fixed_bytes=1000.0, sizes=(1, 2),
                                  totals=(1100, 1200))
    assert fp.max_twins(1000 + 100 * 7.5) == 7
    assert chunking.chunk_size_for(fp, 1000 + 100 * 7.5, 12) == 6
    assert chunking.chunk_size_for(fp, 1e9, 12) == 12
    assert chunking.chunk_size_for(fp, 1000 + 100 * 7.5, 7) == 7
    with pytest.raises(ValueError, match="holds no twin"):
        chunking.chunk_size_for(fp, 1050, 12)
    with pytest.raises(ValueError, match="budget_bytes"):
        fp.max_twins(-1)


def test_dqn_one_chunk_is_make_train_exactly_and_chunks_rotate():
    from probe_envs import CounterEnv, CounterParams

    from dtwin_jax.envs.wrappers import VecEnv
    from dtwin_jax.learners import dqn

    env = CounterEnv()
    batch = VecEnv(env, 6).batch_params(CounterParams(horizon=1000))
    cfg = dqn.DQNConfig(num_envs=6, num_steps=2, total_timesteps=6 * 2 * 6, buffer_size=64,
                        batch_size=8, learning_starts=0, hidden_sizes=(8,))
    key = jax.random.PRNGKey(1)
    r1, m1 = jax.jit(dqn.make_train(env, batch, cfg, batched_params=True))(key)
    r2, m2 = jax.jit(chunking.make_train_chunked(env, batch, cfg, 6))(key)
    for a, b in zip(jax.tree.leaves(r1.train_state.params),
                    jax.tree.leaves(r2.train_state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in m1:
        np.testing.assert_array_equal(np.asarray(m1[name]), np.asarray(m2[name]))
    # 3 chunks of 2 twins: 72 twin steps are 18 updates of 2 twins x 2 steps, 6 per chunk, so
    # every twin steps 6 x 2 = 12 times, and the one replay buffer counts all 72 steps
    runner, metrics = jax.jit(chunking.make_train_chunked(env, batch, cfg, 2))(key)
    assert metrics["loss"].shape == (18,)
    np.testing.assert_array_equal(np.asarray(runner.collector.env_state.env_state.t), 12)
    assert int(runner.timesteps) == 72
    # learning starts once the buffer holds a minibatch (8): from the second update on
    loss = np.asarray(metrics["loss"])
    assert np.isnan(loss[0]) and np.isfinite(loss[1:]).all()
    with pytest.raises(TypeError, match="PPOConfig, a DQNConfig or a VDNConfig"):
        chunking.make_train_chunked(env, batch, object(), 2)


def test_iql_one_chunk_is_make_train_exactly_and_chunks_rotate():
    from probe_envs import CounterEnv, CounterParams

    from dtwin_jax.envs.wrappers import VecEnv
    from dtwin_jax.learners import vdn

    env = CounterEnv()
    batch = VecEnv(env, 4).batch_params(CounterParams(horizon=1000))
    # 2 warm-up updates that only collect, then learning
    cfg = vdn.VDNConfig(mixer="iql", num_envs=4, num_steps=3, total_timesteps=4 * 3 * 4,
                        learning_starts=4 * 3 * 2, buffer_size=16, batch_size=2, num_epochs=1,
                        hidden_size=8)
    key = jax.random.PRNGKey(2)
    r1, m1 = jax.jit(vdn.make_train(env, batch, cfg, batched_params=True))(key)
    r2, m2 = jax.jit(chunking.make_train_chunked(env, batch, cfg, 4))(key)
    for a, b in zip(jax.tree.leaves(r1.params), jax.tree.leaves(r2.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for name in m1:
        np.testing.assert_array_equal(np.asarray(m1[name]), np.asarray(m2[name]))
    # 2 chunks of 2 twins: 48 twin steps are 8 updates of 2 twins x 3 steps, 4 per chunk, so
    # every twin steps 12 times; warm-up is 24 twin steps = the first 4 updates
    runner, metrics = jax.jit(chunking.make_train_chunked(env, batch, cfg, 2))(key)
    np.testing.assert_array_equal(np.asarray(runner.collector.env_state.env_state.t), 12)
    loss = np.asarray(metrics["loss"])
    assert loss.shape == (8,) and np.isnan(loss[:4]).all() and np.isfinite(loss[4:]).all()

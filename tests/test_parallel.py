"""Parallel twins: heterogeneous batches, rollouts, summaries, sharding over a device mesh."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dtwin_jax.envs.association import AssociationEnv, max_sinr_policy
from dtwin_jax.parallel import (
    num_twins,
    rollout,
    spread,
    summarize,
    summarize_rollout,
    twin_params,
)


@pytest.fixture(scope="module")
def env():
    return AssociationEnv(num_bs=4, num_macro=1, max_users=10, num_candidates=2,
                          mobility="waypoint", area_m=300.0, shadow_cell_m=15.0)


def test_spread():
    np.testing.assert_array_equal(spread(20, 100, 5), [20, 40, 60, 80, 100])
    np.testing.assert_array_equal(spread(20, 100, 1), [60])
    with pytest.raises(ValueError, match="hi"):
        spread(10, 5, 3)


def test_twin_batch_densities_mobility_and_rollout(env):
    speeds = [{"speed_max": s} for s in (2.0, 20.0, 5.0)]
    batch = twin_params(env, [2, 7, 10], mobility=speeds, episode_length=4)
    assert num_twins(batch) == 3
    np.testing.assert_allclose(np.asarray(batch.mobility.speed_max), [2.0, 20.0, 5.0])
    keys = ("throughput", "cell_edge", "jain", "sum_log_utility", "handovers")
    traj = jax.jit(lambda k: rollout(env, max_sinr_policy(env), batch, k, 6, keys))(
        jax.random.PRNGKey(0))
    mask = np.asarray(traj["agent_mask"])
    np.testing.assert_array_equal(mask.sum(-1), np.tile([2, 7, 10], (6, 1)))
    thr = np.asarray(traj["throughput"])
    assert np.isfinite(thr).all() and (thr[~mask] == 0).all() and (thr[mask] > 0).all()
    s = summarize(traj)
    np.testing.assert_allclose(s["cell_edge"], np.percentile(thr[mask], 5))
    np.testing.assert_allclose(s["mean_throughput"], thr[mask].mean(), rtol=1e-6)
    # twins reset together after 4 steps: every twin draws new users (new positions)
    assert 0.0 < s["jain"] <= 1.0
    with pytest.raises(ValueError, match="one entry per twin"):
        twin_params(env, [2, 3], mobility=speeds)
    with pytest.raises(ValueError, match="num_users"):
        twin_params(env, [2, 11])
    with pytest.raises(TypeError, match="num_users"):
        twin_params(env, num_users=[2.9])  # refused, not truncated
    with pytest.raises(ValueError, match="one entry per twin"):
        twin_params(env, per_twin={"num_users": [2, 3], "decision_prob": [0.5]})
    batch = twin_params(env, per_twin={"decision_prob": [0.5, 1.0]}, num_users=[3, 3])
    np.testing.assert_allclose(np.asarray(batch.decision_prob), [0.5, 1.0])
    means = summarize_rollout(traj, ("throughput", "reward", "jain"))
    np.testing.assert_allclose(means["throughput"], thr[mask].mean(), rtol=1e-6)
    np.testing.assert_allclose(means["jain"], np.mean(traj["jain"]), rtol=1e-6)


# PPO on association-v0 under jax.vmap over seeds once deadlocked the XLA CPU runtime (batched
# LAPACK QR of the orthogonal init, issue 8); a subprocess with a timeout turns a hang into a
# failure. Tiny sizes keep the compile short (vmap = per-seed runs is tested in test_ppo.py).
_SEEDS_SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    import dtwin_jax
    from dtwin_jax.learners.ppo import PPOConfig
    from dtwin_jax.parallel import train_parallel, twin_params
    env = dtwin_jax.make("association-v0", num_bs=4, num_macro=1, max_users=6,
                         num_candidates=2, mobility="waypoint", area_m=300.0)
    batch = twin_params(env, [4, 6], episode_length=5)
    config = PPOConfig(num_envs=2, num_steps=4, total_timesteps=2 * 4 * 3, num_minibatches=2,
                       update_epochs=2, hidden_sizes=(8,), info_keys=("cell_edge",))
    key = jax.random.PRNGKey(0)
    runner, metrics, _ = train_parallel(env, batch, config, key, num_seeds=2)
    assert metrics["reward"].shape == (2, 3), metrics["reward"].shape
    for name in ("reward", "value_loss", "cell_edge"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name
    assert not np.allclose(metrics["value_loss"][0], metrics["value_loss"][1])
    np.testing.assert_array_equal(metrics["episodes"], [[0, 2, 2]] * 2)  # ends: steps 5, 10
    print("SEEDS_OK")
""")


def test_seeds_vmap_on_association_matches_sequential_runs():
    out = subprocess.run([sys.executable, "-c", _SEEDS_SCRIPT], capture_output=True, text=True,
                         timeout=400, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert "SEEDS_OK" in out.stdout, out.stderr[-3000:]


def _four_cpu_devices() -> dict:
    """The environment of a subprocess with 4 CPU devices (other XLA flags, such as the fast
    compile of conftest.py, kept)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    return dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")


_SHARD_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from dtwin_jax.envs.association import AssociationEnv
    from dtwin_jax.parallel import make_mesh, shard_twins, twin_params
    assert len(jax.devices()) == 4, jax.devices()
    env = AssociationEnv(num_bs=4, num_macro=1, max_users=8, num_candidates=2,
                         mobility="waypoint", area_m=300.0, shadow_cell_m=15.0)
    batch = twin_params(env, [2, 3, 4, 5, 6, 7, 8, 8])
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    reset = jax.jit(jax.vmap(env.reset_env))
    mesh = make_mesh()
    obs_s, state_s = reset(shard_twins(keys, mesh), shard_twins(batch, mesh))
    obs, state = reset(keys, batch)
    assert len(state_s.sinr.sharding.device_set) == 4
    assert state_s.sinr.addressable_shards[0].data.shape[0] == 2
    np.testing.assert_allclose(np.asarray(state_s.sinr), np.asarray(state.sinr), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(obs_s.agent_mask).sum(-1), [2, 3, 4, 5, 6, 7, 8, 8])
    print("SHARDED_OK")
""")


def test_shard_twins_on_four_cpu_devices():
    out = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT], env=_four_cpu_devices(),
                         capture_output=True, text=True, timeout=300)
    assert "SHARDED_OK" in out.stdout, out.stderr[-3000:]


# Data-parallel PPO and VDN: the twin axis split over 4 CPU devices (parameters replicated,
# gradients averaged by XLA's all-reduce) must give the one-device result up to summation
# order. The compiled PPO program has all-reduce (gradient and loss means) and all-gather
# (the minibatch permutation draws across twins) collectives.
_DATA_PARALLEL_SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    import dtwin_jax
    from dtwin_jax.learners.ppo import PPOConfig
    from dtwin_jax.parallel import make_mesh, train_sharded, twin_params
    assert len(jax.devices()) == 4, jax.devices()
    env = dtwin_jax.make("association-v0", num_bs=4, num_macro=1, max_users=6,
                         num_candidates=3, area_m=200.0, shadow_cell_m=20.0)
    batch = twin_params(env, [3, 4, 5, 6], episode_length=4)
    config = PPOConfig(num_steps=4, total_timesteps=4 * 4 * 2, num_minibatches=2,
                       update_epochs=2, hidden_sizes=(8,))
    key = jax.random.PRNGKey(0)
    r4, m4, cfg = train_sharded(env, batch, config, key)
    assert cfg.num_envs == 4 and m4["value_loss"].shape == (2,)
    first = r4.collector.first  # env side: each device holds its own twin
    assert len(first.sharding.device_set) == 4 and first.addressable_shards[0].data.shape[0] == 1
    r1, m1, _ = train_sharded(env, batch, config, key, mesh=make_mesh(jax.devices()[:1]))
    p4, p1 = jax.tree.leaves(r4.train_state.params), jax.tree.leaves(r1.train_state.params)
    for a, b in zip(p4, p1):
        assert a.sharding.is_fully_replicated
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for name in ("reward", "value_loss", "actor_loss"):
        np.testing.assert_allclose(m4[name], m1[name], rtol=1e-5, atol=1e-6)
    # VDN (replay buffer, GRU Q-network, target network) data-parallel the same way
    from dtwin_jax.envs.dnt_sync import DntSyncEnv
    from dtwin_jax.learners import vdn
    dnt = DntSyncEnv(num_bs=2, num_users=3, num_rbs=3, action_form="factored",
                     predictor="persistence")
    dnt_batch = twin_params(dnt, per_twin={"eps": [0.1, 0.2, 0.3, 0.4]}, episode_length=4)
    vcfg = vdn.VDNConfig(num_steps=4, total_timesteps=4 * 4 * 3, buffer_size=32, batch_size=4,
                         num_epochs=1, hidden_size=8, target_update_interval=1)
    v4, vm4, _ = train_sharded(dnt, dnt_batch, vcfg, key, make_train=vdn.make_train)
    v1, vm1, _ = train_sharded(dnt, dnt_batch, vcfg, key, make_train=vdn.make_train,
                               mesh=make_mesh(jax.devices()[:1]))
    for a, b in zip(jax.tree.leaves(v4.params), jax.tree.leaves(v1.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vm4["loss"], vm1["loss"], rtol=1e-4, atol=1e-6)
    assert np.isfinite(vm4["loss"][-1])
    try:
        train_sharded(env, twin_params(env, [3, 4, 5]), config, key)
    except ValueError as err:
        assert "multiple of the mesh size" in str(err)
    else:
        raise AssertionError("3 twins on 4 devices must be refused")
    print("DATA_PARALLEL_OK")
""")


def test_data_parallel_ppo_on_four_devices_equals_one_device():
    out = subprocess.run([sys.executable, "-c", _DATA_PARALLEL_SCRIPT], env=_four_cpu_devices(),
                         capture_output=True, text=True, timeout=400)
    assert "DATA_PARALLEL_OK" in out.stdout, out.stderr[-3000:]

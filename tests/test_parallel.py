"""Parallel twins: heterogeneous batches, rollouts, summaries, sharding over a device mesh."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from dtwin_jax.envs.association import AssociationEnv, max_sinr_policy
from dtwin_jax.parallel import num_twins, rollout, spread, summarize, twin_params


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
    traj = jax.jit(lambda k: rollout(env, max_sinr_policy(env), batch, k, 6))(
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
    with pytest.raises(ValueError, match="one per twin"):
        twin_params(env, [2, 3], mobility=speeds)
    with pytest.raises(ValueError, match="num_users"):
        twin_params(env, [2, 11])


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
    env_vars = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
                    JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT], env=env_vars,
                         capture_output=True, text=True, timeout=300)
    assert "SHARDED_OK" in out.stdout, out.stderr[-3000:]

"""GeneratedMobility: sampled trajectories replayed by Playback, jitted, inside the area."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.mobility.generated import GeneratedMobility
from dtwin_jax.twins.map2traj.diffusion import DiffusionConfig
from dtwin_jax.twins.map2traj.train import SHIPPED_CHECKPOINT
from dtwin_jax.twins.map2traj.unet import UNetConfig

TINY = DiffusionConfig(
    unet=UNetConfig(
        length=8, channels=(8, 8), blocks=1, emb_dim=8, cond_dim=8, map_channels=(4,),
        blur_sigmas=(1.0,), groups=4,
    ),
    timesteps=50,
)
MAP = (8, 8, 2)


def _model_and_params(num_users=5):
    model = GeneratedMobility(num_users, TINY, MAP, num_steps=4)
    shapes = model.default_params().net
    rng = np.random.default_rng(0)
    net = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), s.dtype), shapes)
    raster = np.random.default_rng(1).uniform(size=MAP)
    params = model.make_params(
        net=net, raster=raster, area_min=[100.0, -50.0], area_max=[400.0, 250.0],
        sample_dt=2.0, dt=1.0,
    )  # fmt: skip
    return model, params


def test_init_and_step_are_jitted_once_finite_and_inside_the_area():
    model, params = _model_and_params()
    init = jax.jit(chex.assert_max_traces(model.init, n=1))
    step = jax.jit(chex.assert_max_traces(model.step, n=1))
    s1 = init(jax.random.key(0), params)
    s2 = init(jax.random.key(1), params)  # new key: no retrace, new trajectories
    assert s1.pos.shape == (5, 2) and s1.traj.shape == (5, 8, 2)
    assert not np.allclose(s1.traj, s2.traj)
    np.testing.assert_allclose(s1.pos, s1.traj[:, 0], atol=1e-4)
    lo, hi = np.asarray(params.area_min), np.asarray(params.area_max)
    state = s1
    for k in range(20):  # past the end of the 8-point trajectories: loops back
        state = step(jax.random.key(k), state, params)
        chex.assert_tree_all_finite(state.pos)
        assert np.all(state.pos >= lo) and np.all(state.pos <= hi)
        if k == 1:  # t = 2 s = sample_dt: exactly the second point
            np.testing.assert_allclose(state.pos, s1.traj[:, 1], atol=1e-3)
    np.testing.assert_array_equal(state.traj, s1.traj)  # step never resamples


def test_init_vmaps_over_twins_and_is_deterministic_per_key():
    model, params = _model_and_params(num_users=3)
    keys = jax.random.split(jax.random.key(4), 2)
    batch = jax.jit(jax.vmap(model.init, in_axes=(0, None)))(keys, params)
    assert batch.traj.shape == (2, 3, 8, 2)
    again = jax.jit(model.init)(keys[1], params)
    np.testing.assert_allclose(batch.traj[1], again.traj, atol=1e-4)


def test_params_validation_names_the_field():
    model, params = _model_and_params()
    with pytest.raises(ValueError, match="raster"):
        model.make_params(net=params.net, raster=np.ones((4, 4, 2)))
    with pytest.raises(ValueError, match="eta"):
        model.make_params(net=params.net, eta=2.0)
    bad = jax.tree.map(lambda x: x, params.net)
    bad["params"]["null_cond"] = jnp.zeros(3)
    with pytest.raises(ValueError, match=r"null_cond.*\(3,\)"):
        model.check_params(params.replace(net=bad))
    with pytest.raises(ValueError, match="num_users"):
        GeneratedMobility(0, TINY, MAP)


def test_from_shipped_checkpoint_samples_inside_bounds(tmp_path):
    raster = np.zeros((64, 64, 2), np.float32)
    raster[30:34, :, 0] = 1.0  # one horizontal road
    bounds = np.array([[0.0, 0.0], [800.0, 800.0]])
    model, params = GeneratedMobility.from_checkpoint(
        SHIPPED_CHECKPOINT, raster, bounds, num_users=4, num_steps=3
    )
    state = jax.jit(model.init)(jax.random.key(0), params)
    assert state.traj.shape == (4, model.config.unet.length, 2)
    assert np.all(np.isfinite(state.traj))
    assert np.all(state.traj >= 0.0) and np.all(state.traj <= 800.0)
    with pytest.raises(FileNotFoundError, match="nothing.msgpack"):
        GeneratedMobility.from_checkpoint(tmp_path / "nothing.msgpack", raster, bounds, 4)

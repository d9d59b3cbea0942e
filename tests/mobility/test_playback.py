"""Playback against np.interp, loop and hold, clipping, validation."""

import jax
import numpy as np
import pytest

from dtwin_jax.mobility import Playback


@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize(("dt", "sample_dt"), [(1.0, 1.0), (0.3, 2.0), (2.5, 1.0)])
def test_matches_np_interp(loop, dt, sample_dt):
    users, samples, steps = 3, 7, 40
    traj = np.random.default_rng(0).uniform(0, 1000, (users, samples, 2))
    model = Playback(users, samples, loop=loop)
    params = model.make_params(traj=traj, dt=dt, sample_dt=sample_dt)
    state = model.init(jax.random.key(0), params)
    _, states = jax.jit(model.rollout, static_argnums=3)(jax.random.key(1), state, params, steps)
    pos = np.concatenate([np.asarray(state.pos)[None], np.asarray(states.pos)])  # [T + 1, U, 2]
    times = np.arange(steps + 1) * dt
    if loop:
        times = np.mod(times, (samples - 1) * sample_dt)
    grid = np.arange(samples) * sample_dt
    for u in range(users):
        for c in range(2):
            ref = np.interp(times, grid, traj[u, :, c])
            np.testing.assert_allclose(pos[:, u, c], ref, rtol=1e-5, atol=1e-2)
    assert np.asarray(states.t)[-1] == steps


def test_positions_clipped():
    traj = np.array([[[-50.0, 20.0], [50.0, 20.0]]])
    model = Playback(1, 2, loop=False)
    params = model.make_params(traj=traj, area_min=[0, 0], area_max=[30, 10], dt=0.25)
    state = model.init(jax.random.key(0), params)
    _, states = jax.jit(model.rollout, static_argnums=3)(jax.random.key(0), state, params, 5)
    x = np.concatenate([[-50.0], -50.0 + 100.0 * 0.25 * np.arange(1, 6)])
    np.testing.assert_allclose(np.asarray(state.pos), [[0.0, 10.0]])
    np.testing.assert_allclose(np.asarray(states.pos)[:, 0, 0], np.clip(x[1:], 0, 30), atol=1e-5)
    np.testing.assert_allclose(np.asarray(states.pos)[:, 0, 1], 10.0)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="num_samples=1"):
        Playback(2, 1)
    model = Playback(2, 4)
    with pytest.raises(ValueError, match="traj"):
        model.make_params(traj=np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        model.make_params(traj=np.full((2, 4, 2), np.nan))
    with pytest.raises(ValueError, match="sample_dt"):
        model.make_params(sample_dt=0.0)

"""GaussMarkov: stationary speed statistics against the closed form, kinematics, walls."""

import jax
import numpy as np
import pytest

from dtwin_jax.mobility import GaussMarkov
from dtwin_jax.mobility.gauss_markov import _reflect


def test_stationary_speed_mean_variance_and_memory():
    users, steps, alpha, mean, std = 200, 400, 0.75, 5.0, 2.0
    model = GaussMarkov(users)
    params = model.make_params(alpha=alpha, mean_speed=mean, speed_std=std, dt=0.5)
    state = model.init(jax.random.key(0), params)
    _, states = jax.jit(model.rollout, static_argnums=3)(jax.random.key(1), state, params, steps)
    s = np.asarray(states.speed, np.float64)  # [T, U]
    # AR(1) stationary law: mean, variance std^2, lag-1 correlation alpha. With
    # U * T * (1 - a) / (1 + a) ~ 11000 effective samples, the standard errors are
    # ~0.02 (mean), ~0.07 (variance) and ~0.005 (correlation).
    assert abs(s.mean() - mean) < 0.1
    assert abs(s.var() - std**2) < 0.3
    c = s - mean
    rho = (c[1:] * c[:-1]).mean() / (c * c).mean()
    assert abs(rho - alpha) < 0.025


def test_kinematics_inside_the_area():
    model = GaussMarkov(50)
    params = model.make_params(area_max=[1e5, 1e5], dt=2.0)
    state = model.init(jax.random.key(2), params)
    state = state.replace(pos=np.full((50, 2), 5e4, np.float32))
    _, st = jax.jit(model.rollout, static_argnums=3)(jax.random.key(3), state, params, 30)
    pos = np.concatenate([np.asarray(state.pos)[None], np.asarray(st.pos)])
    speed = np.concatenate([np.asarray(state.speed)[None], np.asarray(st.speed)])
    d = np.concatenate([np.asarray(state.direction)[None], np.asarray(st.direction)])
    expected = pos[:-1] + 2.0 * speed[:-1, :, None] * np.stack([np.cos(d), np.sin(d)], -1)[:-1]
    np.testing.assert_allclose(pos[1:], expected, atol=0.02)
    assert np.all((d >= -np.pi) & (d < np.pi))


ONE = GaussMarkov(1)
ONE_STEP = jax.jit(ONE.step)


def test_wall_reflects_position_and_heading():
    params = ONE.make_params(
        alpha=1.0, speed_std=0.0, direction_std=0.0, mean_direction=[0.0], mean_speed=4.0,
        area_max=[100.0, 100.0],
    )
    state = ONE.init(jax.random.key(0), params).replace(pos=np.array([[98.0, 30.0]], np.float32))
    state = ONE_STEP(jax.random.key(1), state, params)
    np.testing.assert_allclose(state.pos, [[98.0, 30.0]], atol=1e-4)  # 98 + 4 -> 102 -> 98
    np.testing.assert_allclose(abs(float(state.direction[0])), np.pi, atol=1e-5)
    state = ONE_STEP(jax.random.key(2), state, params)
    np.testing.assert_allclose(state.pos, [[94.0, 30.0]], atol=1e-4)  # now heading -x


def test_steering_turns_mean_direction_to_centre():
    params = ONE.make_params(mean_direction=[0.0], mean_speed=0.0, speed_std=0.0)
    state = ONE.init(jax.random.key(0), params)
    state = state.replace(pos=np.array([[990.0, 500.0]], np.float32))
    state = ONE_STEP(jax.random.key(1), state, params)
    np.testing.assert_allclose(float(state.mean_dir[0]), np.pi, atol=1e-4)


def reflect_reference(x, lo, hi):
    """Mirror x into [lo, hi] one wall at a time; count the reflections."""
    flips = 0
    while x < lo or x > hi:
        x = 2 * lo - x if x < lo else 2 * hi - x
        flips += 1
    return x, flips % 2 == 1


def test_reflect_matches_reference():
    rng = np.random.default_rng(0)
    lo, hi = np.array([-3.0, 10.0]), np.array([7.0, 12.5])
    pts = rng.uniform(-40, 40, (500, 2)).astype(np.float32)
    got, flip = (np.asarray(a) for a in _reflect(pts, lo, hi))
    for k in range(500):
        for c in range(2):
            x, f = reflect_reference(float(pts[k, c]), lo[c], hi[c])
            assert got[k, c] == pytest.approx(x, abs=1e-4)
            assert flip[k, c] == f


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"mean_speed": -1.0}, "mean_speed"),
        ({"speed_std": -1.0}, "speed_std"),
        ({"direction_std": np.inf}, "direction_std"),
        ({"mean_direction": [0.0, 1.0]}, "mean_direction"),
    ],
)
def test_bad_params_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        GaussMarkov(3).make_params(**overrides)

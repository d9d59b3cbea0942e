"""RandomWaypoint: speeds within range, pauses respected, straight legs to the waypoints."""

import jax
import numpy as np
import pytest

from dtwin_jax.mobility import RandomWaypoint


def _run(model, params, n, seed=0):
    state = model.init(jax.random.key(seed), params)
    _, states = jax.jit(model.rollout, static_argnums=3)(jax.random.key(seed + 1), state, params, n)
    cat = lambda a, b: np.concatenate([np.asarray(a)[None], np.asarray(b)])
    return jax.tree.map(cat, state, states)  # [n + 1, ...] including the initial state


def test_speeds_pauses_and_waypoints():
    model = RandomWaypoint(8)
    dt, vmin, vmax, pmin, pmax = 0.5, 2.0, 6.0, 1.2, 4.0
    params = model.make_params(
        area_max=[60.0, 40.0], dt=dt, speed_min=vmin, speed_max=vmax, pause_min=pmin,
        pause_max=pmax,
    )
    s = _run(model, params, 1500)
    pos, dest, speed, pause = s.pos, s.dest, s.speed, s.pause_left
    assert np.all((speed >= vmin) & (speed <= vmax))
    delta = np.diff(pos, axis=0)
    step = np.linalg.norm(delta, axis=-1)  # [n, U]
    assert np.all(step <= vmax * dt * (1 + 1e-5))
    arrived = np.any(dest[1:] != dest[:-1], axis=-1)  # a new waypoint was drawn
    moving = pause[:-1] <= 0
    # a moving user that does not arrive covers exactly speed * dt on the line to its waypoint
    cruise = moving & ~arrived
    np.testing.assert_allclose(step[cruise], (speed[:-1] * dt)[cruise], rtol=1e-4, atol=1e-4)
    heading = dest[:-1] - pos[:-1]
    cross = heading[..., 0] * delta[..., 1] - heading[..., 1] * delta[..., 0]
    np.testing.assert_allclose(cross[cruise], 0.0, atol=1e-2)
    # arriving users land on their old waypoint and draw a pause in range
    np.testing.assert_allclose(pos[1:][arrived], dest[:-1][arrived], atol=1e-4)
    assert np.all(arrived <= moving)
    drawn = pause[1:][arrived]
    assert drawn.size > 50 and np.all((drawn >= pmin) & (drawn <= pmax))
    # after arriving, a user stays exactly ceil(pause / dt) steps, then moves again
    checked = 0
    for t, u in zip(*np.nonzero(arrived), strict=True):
        hold = int(np.ceil(pause[t + 1, u] / dt - 1e-5))
        if t + 1 + hold + 1 >= len(step):
            continue
        assert np.all(step[t + 1 : t + 1 + hold, u] == 0.0)
        assert step[t + 1 + hold, u] > 0.0
        checked += 1
    assert checked > 50


def test_no_pause_keeps_moving():
    model = RandomWaypoint(4)
    params = model.make_params(pause_min=0.0, pause_max=0.0, speed_min=3.0, speed_max=3.0)
    s = _run(model, params, 400, seed=5)
    step = np.linalg.norm(np.diff(s.pos, axis=0), axis=-1)
    assert np.all(step > 0.0) and np.all(step <= 3.0 * (1 + 1e-5))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"speed_min": 5.0, "speed_max": 2.0}, "speed_max=2.0 must be >= speed_min=5.0"),
        ({"speed_min": -1.0}, "speed_min"),
        ({"speed_min": 0.0}, "speed_min"),
        ({"pause_min": -1.0}, "pause_min"),
        ({"pause_min": 3.0, "pause_max": 1.0}, "pause_max"),
        ({"dt": 0.0}, "dt"),
    ],
)
def test_bad_params_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        RandomWaypoint(2).make_params(**overrides)

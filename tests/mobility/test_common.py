"""Properties every mobility model must have: inside the area, finite, deterministic,
vmappable over twins with different params, one trace per step, validated params."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.mobility import (
    GaussMarkov,
    Playback,
    RandomWalk,
    RandomWaypoint,
    StreetGraph,
    StreetVehicles,
    street_graph_grid,
)

U, T = 6, 300


def _ring_graph() -> StreetGraph:
    angles = np.linspace(0, 2 * np.pi, 7, endpoint=False)
    nodes = 200.0 + 150.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    edges = np.array([[i, (i + 1) % 7] for i in range(7)] + [[0, 3]])
    return StreetGraph.from_edges(nodes, edges, area_min=[0, 0], area_max=[400, 400])


def _twins():
    """(model, [overrides of twin 0, twin 1, twin 2]) for every model."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=U)
    traj = rng.normal(0.0, 300.0, (U, 9, 2))  # partly outside the area: playback clips
    graphs = [street_graph_grid(4, 3, 80.0), street_graph_grid(5, 5, 40.0), _ring_graph()]
    graphs = [g.pad(25, 40) for g in graphs]
    return [
        (RandomWalk(U), [{}, {"move_probs": probs, "step_length": 20.0},
                         {"area_min": [0, 0], "area_max": [30, 10]}]),
        (RandomWaypoint(U), [{}, {"speed_max": 80.0, "pause_max": 0.0},
                             {"area_max": [50, 20], "dt": 3.0}]),
        (GaussMarkov(U), [{}, {"alpha": 0.0, "mean_speed": 60.0, "speed_std": 30.0},
                          {"area_max": [40, 300], "alpha": 1.0, "edge_margin": 0.0}]),
        (Playback(U, 9, loop=True), [{"traj": traj}, {"traj": traj * 0.1, "dt": 0.37},
                                     {"traj": -traj, "sample_dt": 2.5}]),
        (Playback(U, 9, loop=False), [{"traj": traj}, {"traj": traj, "dt": 0.1},
                                      {"traj": traj, "area_max": [5, 5]}]),
        (StreetVehicles(U, max_hops=6), [{"graph": g, "speed_max": s} for g, s in
                                         zip(graphs, (20.0, 90.0, 400.0), strict=True)]),
    ]


TWINS = _twins()
IDS = [f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(TWINS)]


def _stack(params_list):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *params_list)


def _batched_rollout(model):
    """Jitted ``(keys [B], params [B]) -> pos [B, T, U, 2]``."""

    def one(key, p):
        k_init, k_roll = jax.random.split(key)
        return model.rollout(k_roll, model.init(k_init, p), p, T)[1].pos

    return jax.jit(jax.vmap(one))


@pytest.mark.parametrize(("model", "overrides"), TWINS, ids=IDS)
def test_long_rollout_inside_area_finite_and_deterministic(model, overrides):
    params = _stack([model.make_params(**o) for o in overrides])
    keys = jax.random.split(jax.random.key(1), len(overrides))
    rollout = _batched_rollout(model)
    pos = np.asarray(rollout(keys, params))
    assert pos.shape == (len(overrides), T, U, 2)
    assert pos.dtype == np.float32 and np.all(np.isfinite(pos))
    lo = np.asarray(params.area_min)[:, None, None, :]
    hi = np.asarray(params.area_max)[:, None, None, :]
    assert np.all(pos >= lo) and np.all(pos <= hi)
    # users do move (the twins differ, and no model is stuck)
    assert np.all(np.ptp(pos, axis=(1, 2)) > 0)
    # same key, same trajectories; another key, other trajectories (except playback)
    np.testing.assert_array_equal(pos, rollout(keys, params))
    other = np.asarray(rollout(jax.random.split(jax.random.key(2), len(overrides)), params))
    if isinstance(model, Playback):
        np.testing.assert_array_equal(pos, other)
    else:
        assert not np.array_equal(pos, other)


@pytest.mark.parametrize(("model", "overrides"), TWINS, ids=IDS)
def test_step_traced_once(model, overrides):
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(model.step, n=1))
    init = jax.jit(model.init)
    for i, o in enumerate(overrides[:2]):
        params = model.make_params(**o)
        key = jax.random.key(i)
        state = step(key, init(key, params), params)
        chex.assert_tree_all_finite(state)
        assert state.pos.shape == (U, 2) and state.pos.dtype == jnp.float32


@pytest.mark.parametrize(("model", "overrides"), TWINS, ids=IDS)
def test_make_params_rejects_unknown_and_misshapen(model, overrides):
    with pytest.raises(ValueError, match="no parameter 'speed_of_light'"):
        model.make_params(speed_of_light=3e8)
    with pytest.raises(ValueError, match="area_min"):
        model.make_params(**overrides[0], area_min=[1e6, 1e6, 1e6])
    with pytest.raises(ValueError, match="dt|step_length|area"):
        field = "step_length" if isinstance(model, RandomWalk) else "dt"
        model.make_params(**overrides[0], **{field: -1.0})


def test_area_must_be_nonempty():
    with pytest.raises(ValueError, match="must exceed area_min"):
        RandomWaypoint(3).make_params(area_min=[0, 0], area_max=[10, 0])


@pytest.mark.parametrize("cls", [RandomWalk, RandomWaypoint, GaussMarkov, StreetVehicles])
def test_num_users_validated(cls):
    with pytest.raises(ValueError, match="num_users=0"):
        cls(0)
    with pytest.raises(TypeError, match="num_users"):
        cls(2.5)

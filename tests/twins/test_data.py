"""Routed street trajectories, normalisation and the Map2Traj dataset."""

import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.metrics import distance_to_streets, on_road_ratio
from dtwin_jax.twins.map2traj import data, maps


@pytest.fixture(scope="module")
def graph():
    return maps.procedural_street_map(11, 600.0)


def test_trajectories_on_road_speeds_and_determinism(graph):
    dt, vmax, vturn = 2.0, 14.0, 2.0
    traj = data.street_trajectories(graph, 3, 40, 80, dt, speed_max=vmax, turn_speed_min=vturn,
                                    noise_std_m=0.0)  # fmt: skip
    assert traj.shape == (40, 80, 2) and traj.dtype == np.float32
    assert float(on_road_ratio(traj, graph, 0.05)) == 1.0
    steps = np.linalg.norm(np.diff(traj, axis=1), axis=-1)
    assert steps.max() <= vmax * dt + 1e-3  # straight-line step <= distance driven
    # Speed never drops below the turning floor and trips chain (no vehicle parks at its
    # destination): each drives >= vturn * dt per step; the chord sum is most of that.
    assert np.all(steps.sum(axis=1) > 0.5 * vturn * dt * 79)
    assert np.mean(steps) > 4.0  # well above the floor: vehicles cruise between turns
    np.testing.assert_array_equal(
        traj, data.street_trajectories(graph, 3, 40, 80, dt, speed_max=vmax,
                                       turn_speed_min=vturn, noise_std_m=0.0)
    )  # fmt: skip
    other = data.street_trajectories(graph, 4, 40, 80, dt, noise_std_m=0.0)
    assert not np.allclose(other, traj)


def test_gps_noise_statistics(graph):
    clean = data.street_trajectories(graph, 5, 64, 32, noise_std_m=0.0)
    noisy = data.street_trajectories(graph, 5, 64, 32, noise_std_m=4.0)
    err = (noisy - clean).reshape(-1)
    assert np.std(err) == pytest.approx(4.0, rel=0.05) and abs(np.mean(err)) < 0.2
    d = np.asarray(distance_to_streets(noisy, graph))
    assert np.median(d) < 4.0 and d.max() < 30.0


def test_trajectory_validation(graph):
    with pytest.raises(ValueError, match="speed_max"):
        data.street_trajectories(graph, 0, 4, 8, speed_min=10.0, speed_max=5.0)
    with pytest.raises(ValueError, match="dt_s"):
        data.street_trajectories(graph, 0, 4, 8, dt_s=0.0)
    with pytest.raises(TypeError, match="num"):
        data.street_trajectories(graph, 0, 4.0, 8)


def test_normalize_roundtrip_numpy_and_jax():
    rng = np.random.default_rng(0)
    bounds = np.array([[[0.0, 0.0], [100.0, 100.0]], [[-50.0, 10.0], [50.0, 210.0]]], np.float32)
    traj = rng.uniform(0, 1, size=(2, 3, 5, 2)).astype(np.float32)
    metres = bounds[:, None, None, 0] + traj * (bounds[:, None, None, 1] - bounds[:, None, None, 0])
    unit = data.normalize(metres, bounds)
    np.testing.assert_allclose(unit, 2 * traj - 1, atol=1e-5)
    np.testing.assert_allclose(data.denormalize(unit, bounds), metres, atol=1e-3)
    np.testing.assert_allclose(data.normalize(jnp.asarray(metres[0]), bounds[0]), unit[0],
                               atol=1e-5)  # fmt: skip
    assert np.all(data.normalize(np.array([[0.0, 0.0], [100.0, 100.0]]), bounds[0]) ** 2 == 1)


def test_make_dataset_shapes_ranges_determinism():
    ds = data.make_dataset(0, 3, 8, 16, 32, size_m=500.0, noise_std_m=0.0)
    assert ds["raster"].shape == (3, 32, 32, 2) and ds["raster"].dtype == np.float32
    assert ds["traj"].shape == (3, 8, 16, 2) and ds["traj"].dtype == np.float32
    assert ds["bounds"].shape == (3, 2, 2)
    np.testing.assert_allclose(ds["bounds"], [[[0, 0], [500, 500]]] * 3)
    assert ds["raster"].min() >= 0 and ds["raster"].max() <= 1
    assert np.abs(ds["traj"]).max() <= 1.0
    again = data.make_dataset(0, 3, 8, 16, 32, size_m=500.0, noise_std_m=0.0)
    for key in ds:
        np.testing.assert_array_equal(ds[key], again[key])
    # trajectories lie on the roads of their own map's raster
    pix = ((ds["traj"] + 1) / 2 * 32).astype(int).clip(0, 31)
    m = np.arange(3)[:, None, None]
    assert np.all(ds["raster"][m, pix[..., 1], pix[..., 0], 0] > 0.5)


def test_real_map_dataset():
    helsinki = maps.load_osm_graph("helsinki")
    ds = data.map_dataset([helsinki], 1, 16, 24, 32, noise_std_m=0.0)
    assert ds["traj"].shape == (1, 16, 24, 2)
    metres = data.denormalize(ds["traj"][0], ds["bounds"][0])
    assert float(on_road_ratio(metres, helsinki, 0.05)) == 1.0

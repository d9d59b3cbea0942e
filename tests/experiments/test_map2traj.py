"""Map2Traj zero-shot experiment: tiny end-to-end run, metric ranges, sanity, outputs, config."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from dtwin_jax.experiments import map2traj as X
from dtwin_jax.metrics import trajectories as tm
from dtwin_jax.twins.map2traj import data, maps
from dtwin_jax.twins.map2traj.train import TrainConfig

TINY = X.PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("m2t")
    return X.run(TINY, out), out


def test_every_metric_for_every_method_and_map(tiny_run):
    results, _ = tiny_run
    names = [f"procedural-{s}" for s in TINY.unseen_map_seeds] + list(TINY.real_maps)
    assert [r["map"] for r in results["per_map"]] == names
    for row in [*results["per_map"], *[{"methods": m} for m in results["mean"].values()]]:
        assert set(row["methods"]) == set(X.METHODS)
        for vals in row["methods"].values():
            assert set(vals) == set(X.METRICS)
            assert all(math.isfinite(v) for v in vals.values())
            for k in ("density_jsd", "trip_jsd", "trip_length_jsd"):
                assert 0.0 <= vals[k] <= math.log(2) + 1e-6
            assert 0.0 <= vals["edr"] <= 1.0 and 0.0 <= vals["on_road"] <= 1.0
            assert min(vals["dtw"], vals["trip_length_w1"], vals["sliced_w1"],
                       vals["grid_w1"]) >= 0.0  # fmt: skip
    # Means are the means of the per-map rows.
    procedural = [r for r in results["per_map"] if r["kind"] == "procedural"]
    np.testing.assert_allclose(
        results["mean"]["unseen_procedural"]["generated"]["dtw"],
        np.mean([r["methods"]["generated"]["dtw"] for r in procedural]), rtol=1e-6,
    )
    # The independent real sample is routed on the streets too.
    assert all(r["methods"]["real_resample"]["on_road"] >= 0.97 for r in results["per_map"])
    assert set(results["targets"]) == {"beats_baselines_on_every_metric", "on_road_ratio_ge_0.9",
                                       "density_jsd_le_half_random_waypoint"}  # fmt: skip


def test_outputs_written_atomically(tiny_run):
    results, out = tiny_run
    assert sorted(p.name for p in out.iterdir()) == ["map2traj.json", "map2traj.png"]
    assert json.loads((out / "map2traj.json").read_text()) == json.loads(json.dumps(results))
    assert (out / "map2traj.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_json_write_keeps_previous_file(tmp_path):
    path = tmp_path / "r.json"
    X.write_json({"a": 1}, path)
    with pytest.raises(TypeError):
        X.write_json({"a": object()}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_deterministic_under_seed(tiny_run):
    config = dataclasses.replace(TINY, unseen_map_seeds=(101,), real_maps=())
    a, b = X.run(config), X.run(config)
    assert a["per_map"] == b["per_map"]
    assert a["per_map"][0] == tiny_run[0]["per_map"][0]  # map 0 uses the same key


def test_real_resample_beats_random_waypoint():
    """Real vs an independent real sample scores better than random waypoint vs real.

    With 48 trajectories of 16 points, the point-cloud Wasserstein distances (sliced_w1,
    grid_w1) are dominated by sampling noise (either order occurs across maps), so they are
    left out here; the full run compares them on 128 x 64 points per map.
    """
    config = dataclasses.replace(TINY, density_grid=16, w_grid=8, num_projections=32)
    graph = maps.procedural_street_map(8)
    box = maps.square_bounds(graph)
    real = data.street_trajectories(graph, 1, 48, 16)
    resample = data.street_trajectories(graph, 2, 48, 16)
    rw = X.baseline_trajectories(jax.random.key(0), real, box, 2.0)["random_waypoint"]
    key = jax.random.key(1)
    ref = X.compare(config, real, resample, box, graph, key)
    base = X.compare(config, real, rw, box, graph, key)
    for k in ("edr", "dtw", "density_jsd", "trip_jsd", "trip_length_jsd", "trip_length_w1"):
        assert ref[k] < base[k], k
    assert ref["on_road"] > 0.97 > 0.5 > base["on_road"]


def test_baselines_stay_in_bounds_with_matched_speeds():
    graph = maps.procedural_street_map(7)
    box = maps.square_bounds(graph)
    real = data.street_trajectories(graph, 1, 12, 16)
    out = X.baseline_trajectories(jax.random.key(3), real, box, 2.0)
    fit = out["fit"]
    v = X.step_speeds(real, 2.0)
    np.testing.assert_allclose(fit["speed_mean"], v.mean(), rtol=1e-6)
    np.testing.assert_allclose([fit["speed_p05"], fit["speed_p95"]], np.quantile(v, [0.05, 0.95]))
    for name in X.BASELINES:
        traj = out[name]
        assert traj.shape == real.shape
        assert np.all(traj >= box[0] - 1e-3) and np.all(traj <= box[1] + 1e-3)
    # Random waypoint never moves faster than its top speed (arrivals make shorter steps).
    assert X.step_speeds(out["random_waypoint"], 2.0).max() <= fit["speed_p95"] * (1 + 1e-4)


def test_cross_distances_and_matched_mean_match_references():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (3, 6, 2)).astype(np.float32)
    b = rng.uniform(0, 100, (4, 6, 2)).astype(np.float32)
    edr = np.asarray(X.cross_distances(a, b, 30.0, "edr"))
    dtw = np.asarray(X.cross_distances(a, b, 0.0, "dtw"))
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(edr[i, j], tm.edr(a[i], b[j], 30.0), rtol=1e-6)
            np.testing.assert_allclose(dtw[i, j], tm.dtw(a[i], b[j]), rtol=1e-5)
    d = np.array([[1.0, 5.0, 9.0], [4.0, 2.0, 8.0]])
    # rows: 1, 2; columns: 1, 2, 8 -> mean of the five matched pairs
    assert X.matched_mean(d) == pytest.approx((1 + 2 + 1 + 2 + 8) / 5)


def test_targets_report_each_comparison():
    vals = {k: 0.2 for k in X.METRICS}
    good = {**vals, "on_road": 0.95, "density_jsd": 0.05}
    bad = {**vals, "on_road": 0.5}
    means = {"generated": good, "random_waypoint": bad, "gauss_markov": bad}
    t = X.targets(means)
    # equal values (0.2) are not a win
    assert not t["beats_baselines_on_every_metric"]["met"]
    assert t["on_road_ratio_ge_0.9"]["met"]
    assert t["density_jsd_le_half_random_waypoint"]["met"]
    better = {k: 0.1 for k in X.METRICS} | {"on_road": 0.95}
    assert X.targets({**means, "generated": better})["beats_baselines_on_every_metric"]["met"]
    assert not X.targets({**means, "generated": {**better, "density_jsd": 0.15}})[
        "density_jsd_le_half_random_waypoint"]["met"]  # fmt: skip


def test_training_seeds_are_those_of_make_dataset_and_overlap_is_rejected():
    cfg = TrainConfig(num_maps=5, data_seed=3).to_dict()
    seeds = X.training_map_seeds(cfg)
    assert seeds.shape == (5,) and len(set(seeds.tolist())) == 5
    # The first training maps of make_dataset are the procedural maps of these seeds.
    ds = data.make_dataset(seed=3, num_maps=2, trajs_per_map=1, length=2, resolution=16)
    for i in range(2):
        graph = maps.procedural_street_map(int(seeds[i]))
        raster = maps.rasterize(graph, 16, 8.0, maps.square_bounds(graph))
        np.testing.assert_allclose(ds["raster"][i], raster, atol=1e-6)
    assert X.check_unseen((1, 2), cfg).tolist() == seeds.tolist()
    with pytest.raises(ValueError, match="training maps"):
        X.check_unseen((1, int(seeds[2])), cfg)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("unseen_map_seeds", (), "at least one"),
        ("unseen_map_seeds", (4, 4), "repeated"),
        ("unseen_map_seeds", (-1,), "unseen_map_seeds entry"),
        ("real_maps", ("atlantis",), "real_maps entry"),
        ("trajs_per_map", 1, "trajs_per_map"),
        ("edr_eps_m", 0.0, "edr_eps_m"),
        ("eta", 2.0, "eta"),
        ("plot_trajs", 500, "plot_trajs"),
        ("w_grid", 64, "w_grid"),
    ],
)
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **{field: value})


def test_config_type_errors():
    with pytest.raises(TypeError, match="checkpoint"):
        dataclasses.replace(TINY, checkpoint=3)
    with pytest.raises(TypeError, match="trajs_per_map"):
        dataclasses.replace(TINY, trajs_per_map=2.5)
    with pytest.raises(TypeError, match="Map2TrajExperimentConfig"):
        X.run({"seed": 0})

"""The usability figures of plots.py render headless (Agg) into non-trivial PNG files."""

import numpy as np
import pytest

from dtwin_jax import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes, len(data)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 150


def _save(ax_or_fig, path):
    fig = getattr(ax_or_fig, "figure", ax_or_fig)
    plots.save(fig, path)
    _check_png(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_deployment_map_with_coverage_field(tmp_path, rng):
    bs = rng.uniform(0, 500, (6, 2))
    users = rng.uniform(0, 500, (30, 2))
    serving = rng.integers(-1, 6, 30)
    field = rng.normal(0, 8, (20, 20))
    ax = plots.deployment_map(bs, users, serving=serving, active=rng.random(30) < 0.8,
                              bs_is_macro=np.arange(6) < 2, field=field,
                              extent=(0, 500, 0, 500), field_label="SINR (dB)", title="twin 0")
    _save(ax, tmp_path / "deployment.png")


def test_trajectory_panels_real_vs_generated(tmp_path, rng):
    nodes = rng.uniform(0, 300, (12, 2))
    edges = np.stack([np.arange(11), np.arange(1, 12)], 1)
    walks = np.cumsum(rng.normal(0, 5, (2, 8, 20, 2)), axis=2) + 150
    fig = plots.trajectory_panels({"real": walks[0], "generated": walks[1]}, nodes, edges)
    assert len(fig.axes) == 2
    _save(fig, tmp_path / "trajectories.png")


def test_throughput_cdfs(tmp_path, rng):
    ax = plots.throughput_cdfs({"PPO": rng.lognormal(15, 1, 200),
                                "max-SINR": rng.lognormal(14.5, 1, 200)}, log_x=True)
    _save(ax, tmp_path / "cdf.png")


def test_training_curves_with_seed_bands_and_nan(tmp_path, rng):
    curves = rng.normal(0, 1, (5, 40)).cumsum(1)
    curves[:, :3] = np.nan  # no finished episode yet
    ax = plots.training_curves({"PPO": curves, "one seed": curves[0]}, ylabel="return")
    assert len(ax.collections) == 1  # one band: the 5-seed curve
    # a curve reduced in a results file ({"mean", "ci95"}) draws its stored band
    ax = plots.training_curves({"stored": {"mean": [0.0, 1.0, 1.5], "ci95": [0.2, 0.1, 0.1]}},
                               x=[1, 2, 4])
    assert len(ax.collections) == 1
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[1, 0.0], [2, 1.0], [4, 1.5]])
    _save(ax, tmp_path / "curves.png")


def test_scaling_plot(tmp_path):
    sizes = [1, 4, 16, 64, 256]
    ax = plots.scaling_plot(sizes, {"dtwin_jax": [1e3, 3.9e3, 15e3, 50e3, np.nan],
                                    "peer": [900, 1000, 1100, 1100, 1100]})
    _save(ax, tmp_path / "scaling.png")

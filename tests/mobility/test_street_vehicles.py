"""StreetVehicles: on the roads, along shortest paths, within the largest component."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.mobility import StreetGraph, StreetVehicles, street_graph_grid
from dtwin_jax.mobility.streets import _other_node


def knn_graph(seed, n=30, k=3, size=500.0):
    """Random points joined to their k nearest neighbours (may be disconnected)."""
    pts = np.random.default_rng(seed).uniform(0, size, (n, 2))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nbr = np.argsort(d, axis=1)[:, :k]
    edges = np.stack([np.repeat(np.arange(n), k), nbr.ravel()], axis=1)
    return StreetGraph.from_edges(pts, edges, area_min=[0, 0], area_max=[size, size])


def _run(model, params, steps, seed=0):
    state = jax.jit(model.init)(jax.random.key(seed), params)
    _, st = jax.jit(model.rollout, static_argnums=3)(jax.random.key(seed + 1), state, params, steps)
    cat = lambda a, b: np.concatenate([np.asarray(a)[None], np.asarray(b)])
    return jax.tree.map(cat, state, st)  # [steps + 1, ...]


def _seg_dist(p, a, b):
    """Distance from points p to segments a-b (all [..., 2])."""
    ab, ap = b - a, p - a
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1)


def test_fast_vehicles_stay_on_roads_and_follow_geodesics():
    g = knn_graph(0).pad(36, 100)
    nodes, dist = np.asarray(g.nodes), np.asarray(g.dist)
    mask, emask = np.asarray(g.node_mask), np.asarray(g.edge_mask)
    edges = np.asarray(g.edges)[emask]
    model = StreetVehicles(10, max_hops=64)
    params = model.make_params(graph=g, speed_min=50.0, speed_max=250.0, dt=1.0)
    s = _run(model, params, 300)
    frm, to, off, dest = s.edge_from, s.edge_to, s.offset, s.dest
    # only nodes of the largest component are ever used
    assert mask[frm].all() and mask[to].all() and mask[dest].all()
    # each vehicle sits on its edge (a real road, or a node), at an offset within it
    on_node = frm == to
    lookup = {tuple(e) for e in edges} | {tuple(e[::-1]) for e in edges}
    assert all((a, b) in lookup for a, b in zip(frm[~on_node], to[~on_node], strict=True))
    seg = np.linalg.norm(nodes[to] - nodes[frm], axis=-1)
    assert np.all((off >= 0) & (off <= seg + 1e-3))
    assert np.all(_seg_dist(s.pos, nodes[frm], nodes[to]) < 1e-3)
    nearest = _seg_dist(s.pos[..., None, :], nodes[edges[:, 0]], nodes[edges[:, 1]]).min(-1)
    assert np.all(nearest < 1e-3)
    # remaining route length drops by exactly speed * dt each step until arrival: the
    # vehicle drives along a shortest path to its destination, crossing several nodes
    remaining = (seg - off) + dist[to, dest]
    arrived = dest[1:] != dest[:-1]
    travel = s.speed[:-1] * 1.0
    tol = 1e-3 + 2e-5 * remaining[:-1]
    cruise = ~arrived
    np.testing.assert_allclose(
        remaining[1:][cruise], (remaining[:-1] - travel)[cruise], atol=float(tol.max())
    )
    assert np.all(remaining[:-1][arrived] <= travel[arrived] + tol[arrived])
    assert np.all(frm[1:][arrived] == dest[:-1][arrived]) and np.all(off[1:][arrived] == 0)
    assert arrived.sum() > 100
    assert (s.speed >= 50.0).all() and (s.speed <= 250.0).all()


def test_trip_lengths_equal_shortest_path_lengths():
    g = knn_graph(1, n=20)
    nodes, dist = np.asarray(g.nodes), np.asarray(g.dist)
    edges = np.asarray(g.edges)
    min_edge = np.linalg.norm(nodes[edges[:, 0]] - nodes[edges[:, 1]], axis=1).min()
    model = StreetVehicles(6, max_hops=2)
    speed = 0.9 * float(min_edge)  # at most one node crossed per step
    params = model.make_params(graph=g, speed_min=speed, speed_max=speed)
    s = _run(model, params, 1500, seed=3)
    lookup = {tuple(e) for e in edges} | {tuple(e[::-1]) for e in edges}
    trips = 0
    for u in range(6):
        frm, dest = s.edge_from[:, u], s.dest[:, u]
        starts = np.nonzero(dest[1:] != dest[:-1])[0] + 1  # steps at which a trip begins
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            path = [frm[a]] + [frm[t] for t in range(a + 1, b + 1) if frm[t] != frm[t - 1]]
            assert path[-1] == dest[a]
            hops = list(zip(path[:-1], path[1:], strict=True))
            assert all(hop in lookup for hop in hops)
            length = sum(np.linalg.norm(nodes[j] - nodes[i]) for i, j in hops)
            np.testing.assert_allclose(length, dist[path[0], path[-1]], rtol=1e-4)
            trips += 1
    assert trips > 30


def test_new_destinations_uniform_over_other_masked_nodes():
    mask = np.array([1, 0, 1, 1, 0, 1, 1], bool)
    csum = jnp.cumsum(jnp.asarray(mask, jnp.int32))
    u = (np.arange(4000) + 0.5) / 4000
    for current in np.nonzero(mask)[0]:
        picks = np.asarray(_other_node(jnp.asarray(u), jnp.full(4000, current), csum))
        counts = np.bincount(picks, minlength=7)
        expected = np.where(mask, 1000, 0)
        expected[current] = 0
        np.testing.assert_array_equal(counts, expected)


def test_bad_inputs_rejected():
    model = StreetVehicles(3)
    with pytest.raises(TypeError, match="StreetGraph"):
        model.make_params(graph=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="speed_max"):
        model.make_params(speed_min=10.0, speed_max=5.0)
    with pytest.raises(ValueError, match="speed_min"):
        model.make_params(speed_min=-1.0)
    lonely = street_graph_grid(2, 1, 10.0)
    with pytest.raises(ValueError, match="fewer than 2 nodes"):
        model.make_params(graph=lonely.replace(node_mask=jnp.array([True, False])))
    with pytest.raises(ValueError, match="max_hops=0"):
        StreetVehicles(3, max_hops=0)

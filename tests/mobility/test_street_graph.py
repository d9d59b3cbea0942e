"""StreetGraph.from_edges against a brute-force Floyd-Warshall, validation, padding."""

import numpy as np
import pytest

from dtwin_jax.mobility.streets import UNREACHABLE, StreetGraph, street_graph_grid


def floyd_warshall(nodes, edges):
    """All-pairs shortest distances by the O(N^3) textbook recurrence."""
    n = len(nodes)
    dist = np.full((n, n), np.inf)
    np.fill_diagonal(dist, 0.0)
    for i, j in edges:
        w = np.linalg.norm(nodes[i] - nodes[j])
        dist[i, j] = dist[j, i] = min(w, dist[i, j])
    for k in range(n):
        for i in range(n):
            for j in range(n):
                if dist[i, k] + dist[k, j] < dist[i, j]:
                    dist[i, j] = dist[i, k] + dist[k, j]
    return dist


def random_graph(rng, n, e):
    nodes = rng.uniform(0, 100, (n, 2))
    edges = set()
    while len(edges) < e:
        i, j = rng.choice(n, 2, replace=False)
        edges.add((min(i, j), max(i, j)))
    return nodes, np.array(sorted(edges))


def follow(next_hop, nodes, i, j):
    """Length of the route i -> j obtained by following next_hop."""
    length, steps = 0.0, 0
    while i != j:
        k = next_hop[i, j]
        assert k != i, "next_hop stuck before reaching a reachable node"
        length += np.linalg.norm(nodes[k] - nodes[i])
        i, steps = k, steps + 1
        assert steps <= len(nodes)
    return length


@pytest.mark.parametrize("seed", range(6))
def test_dist_and_next_hop_match_floyd_warshall(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    nodes, edges = random_graph(rng, n, int(rng.integers(1, n * (n - 1) // 2 + 1)))
    g = StreetGraph.from_edges(nodes, edges)
    ref = floyd_warshall(nodes, edges)
    dist, nh = np.asarray(g.dist), np.asarray(g.next_hop)
    reach = np.isfinite(ref)
    np.testing.assert_allclose(dist[reach], ref[reach], rtol=1e-5, atol=1e-3)
    assert np.all(dist[~reach] == np.float32(UNREACHABLE))
    for i in range(n):
        for j in range(n):
            if i == j or not reach[i, j]:
                assert nh[i, j] == i
            else:
                assert nh[i, j] != i
                # the next hop is a neighbour and the route it starts is a shortest one
                np.testing.assert_allclose(follow(nh, nodes, i, j), ref[i, j], rtol=1e-5)
    # node_mask marks one largest connected component
    mask = np.asarray(g.node_mask)
    assert mask.sum() == reach.sum(axis=1).max()
    assert np.all(reach[np.ix_(mask, mask)]) and not np.any(reach[np.ix_(mask, ~mask)])


def test_edges_deduplicated_and_bounds_default_to_bbox():
    nodes = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]])
    g = StreetGraph.from_edges(nodes, np.array([[1, 0], [0, 1], [2, 1]]))
    assert np.asarray(g.edges).tolist() == [[0, 1], [1, 2]]
    np.testing.assert_allclose(np.asarray(g.dist)[0, 2], 9.0)
    np.testing.assert_allclose(g.bounds[0], [0, 0])
    np.testing.assert_allclose(g.bounds[1], [3, 4])


def test_grid_and_padding():
    g = street_graph_grid(3, 2, spacing=10.0)
    assert g.num_nodes == 6 and g.num_edges == 7
    np.testing.assert_allclose(np.asarray(g.dist)[0, 5], 30.0)
    p = g.pad(9, 10)
    assert p.nodes.shape == (9, 2) and p.edges.shape == (10, 2)
    assert np.asarray(p.node_mask).tolist() == [True] * 6 + [False] * 3
    assert np.asarray(p.edge_mask).sum() == 7
    np.testing.assert_array_equal(np.asarray(p.dist)[:6, :6], np.asarray(g.dist))
    assert np.asarray(p.next_hop)[7, 2] == 7 and np.asarray(p.dist)[7, 2] == np.float32(UNREACHABLE)
    with pytest.raises(ValueError, match="num_nodes"):
        g.pad(5, 10)


@pytest.mark.parametrize(
    ("nodes", "edges", "match"),
    [
        (np.zeros((1, 2)), np.array([[0, 0]]), "at least 2 nodes"),
        (np.eye(2), np.zeros((0, 2), int), "empty"),
        (np.eye(2), [], "empty"),
        (np.eye(2), np.array([[0, 2]]), "out of range"),
        (np.eye(2), np.array([[-1, 1]]), "out of range"),
        (np.eye(3)[:, :2], np.array([[1, 1]]), "self loop"),
        (np.array([[0.0, np.nan], [1, 1]]), np.array([[0, 1]]), "NaN"),
        (np.array([[1.0, 1.0], [1, 1]]), np.array([[0, 1]]), "zero length"),
        (np.eye(2), np.array([0, 1]), "shape"),
    ],
)
def test_from_edges_rejects_bad_input(nodes, edges, match):
    with pytest.raises(ValueError, match=match):
        StreetGraph.from_edges(nodes, edges)


def test_from_edges_rejects_float_edges_and_small_area():
    with pytest.raises(TypeError, match="integer"):
        StreetGraph.from_edges(np.eye(2), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="contain every node"):
        StreetGraph.from_edges(np.eye(2), np.array([[0, 1]]), area_min=[0, 0], area_max=[0.5, 1])

"""Street graphs and vehicles that drive along them.

``StreetGraph`` holds a road network with all-pairs shortest-path routing tables computed
once in NumPy/SciPy (``StreetGraph.from_edges``). ``StreetVehicles`` moves vehicles along
the roads inside jit: each step a vehicle advances ``speed * dt`` metres along the route
given by ``next_hop``, crossing as many nodes as needed (up to ``max_hops``), and on
arrival draws a new destination and speed.

Graphs are never renumbered: nodes outside the largest connected component (and padding
nodes added by ``StreetGraph.pad``) get ``node_mask = False`` and vehicles never use them.
Padding gives different maps the same array sizes, so a stack of graphs inside a stack of
``StreetVehicles.Params`` runs a batch of twins on different maps under one ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, Rules
from dtwin_jax.mobility import base

UNREACHABLE = 1e9
"""Value of ``StreetGraph.dist`` between nodes with no path between them (metres)."""


@struct.dataclass
class StreetGraph:
    """An undirected road network with shortest-path routing tables.

    Fields (N nodes, E edges):
      nodes     [N, 2] float32  node coordinates, metres
      edges     [E, 2] int32    undirected edges ``(i, j)`` with ``i < j``, each once
      next_hop  [N, N] int32    next node on a shortest path from i to j (i if i == j or
                                j is unreachable)
      dist      [N, N] float32  shortest-path length, metres (``UNREACHABLE`` if no path)
      area_min  [2] float32     lower-left corner of the map area, metres
      area_max  [2] float32     upper-right corner, metres
      node_mask [N] bool        True for nodes of the largest connected component
      edge_mask [E] bool        True for real edges (False for padding)
    Edge lengths are the Euclidean distances between their end nodes.
    """

    nodes: jax.Array
    edges: jax.Array
    next_hop: jax.Array
    dist: jax.Array
    area_min: jax.Array
    area_max: jax.Array
    node_mask: jax.Array
    edge_mask: jax.Array

    @property
    def num_nodes(self) -> int:
        """``N``: node rows of ``nodes [N, 2]`` (padding included)."""
        return self.nodes.shape[-2]

    @property
    def num_edges(self) -> int:
        """``E``: edge rows of ``edges [E, 2]`` (padding included)."""
        return self.edges.shape[-2]

    @property
    def bounds(self) -> tuple[jax.Array, jax.Array]:
        """``(area_min [2], area_max [2])`` in metres."""
        return self.area_min, self.area_max

    @classmethod
    def from_edges(cls, nodes, edges, area_min=None, area_max=None) -> StreetGraph:
        """Build a graph from node coordinates ``[N, 2]`` (m) and integer edges ``[E, 2]``.

        Edges are undirected; duplicates (in either orientation) are merged. Self loops,
        indices outside ``[0, N)``, non-finite coordinates, zero-length edges, fewer than
        2 nodes or no edge raise ValueError. The area defaults to the nodes' bounding box;
        a given area must contain every node. Runs in NumPy/SciPy (call outside jit).
        """
        nodes = _checks.check_array("nodes", nodes, shape=(None, 2))
        n = nodes.shape[0]
        if n < 2:
            raise ValueError(f"nodes has {n} rows; a street graph needs at least 2 nodes")
        edges = _check_edges(edges, n)
        lengths = np.linalg.norm(nodes[edges[:, 0]] - nodes[edges[:, 1]], axis=1)
        if np.any(lengths <= 0.0):
            i, j = edges[np.argmin(lengths)]
            raise ValueError(f"edge ({i}, {j}) has zero length; nodes {i} and {j} coincide")
        lo, hi = _check_bounds(nodes, area_min, area_max)

        adj = coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
        dist, pred = shortest_path(adj, method="D", directed=False, return_predecessors=True)
        # Undirected: the node after i on a shortest path i -> j is the node before i on
        # the shortest path j -> i, i.e. pred[j, i]. All next_hop[:, j] come from one
        # shortest-path tree rooted at j, so following them never loops.
        next_hop = pred.T.copy()
        no_hop = next_hop < 0
        next_hop[no_hop] = np.broadcast_to(np.arange(n)[:, None], (n, n))[no_hop]
        dist = np.where(np.isfinite(dist), dist, UNREACHABLE)

        _, labels = connected_components(adj, directed=False)
        node_mask = labels == np.argmax(np.bincount(labels))
        return cls(
            # cast in NumPy: a jnp cast would compile a conversion for every new graph size
            nodes=jnp.asarray(np.asarray(nodes, np.float32)),
            edges=jnp.asarray(np.asarray(edges, np.int32)),
            next_hop=jnp.asarray(np.asarray(next_hop, np.int32)),
            dist=jnp.asarray(np.asarray(dist, np.float32)),
            area_min=jnp.asarray(np.asarray(lo, np.float32)),
            area_max=jnp.asarray(np.asarray(hi, np.float32)),
            node_mask=jnp.asarray(np.asarray(node_mask, bool)),
            edge_mask=jnp.asarray(np.ones(edges.shape[0], dtype=bool)),
        )

    def pad(self, num_nodes: int, num_edges: int) -> StreetGraph:
        """Pad to ``num_nodes`` nodes and ``num_edges`` edges (call outside jit).

        Padding nodes sit at ``area_min``, are unreachable and masked out; padding edges
        are ``(0, 0)`` with ``edge_mask = False``. Use it to stack graphs of different maps.
        """
        n, e = self.num_nodes, self.num_edges
        num_nodes = _checks.check_int("num_nodes", num_nodes, lo=n)
        num_edges = _checks.check_int("num_edges", num_edges, lo=e)
        extra_n, extra_e = num_nodes - n, num_edges - e
        idx = np.arange(num_nodes)
        next_hop = np.broadcast_to(idx[:, None], (num_nodes, num_nodes)).copy()
        next_hop[:n, :n] = np.asarray(self.next_hop)
        dist = np.full((num_nodes, num_nodes), UNREACHABLE, dtype=np.float32)
        np.fill_diagonal(dist, 0.0)
        dist[:n, :n] = np.asarray(self.dist)
        def grow(field, fill):
            return jnp.asarray(np.concatenate([np.asarray(field), fill]))

        return self.replace(
            nodes=grow(self.nodes, np.tile(np.asarray(self.area_min), (extra_n, 1))),
            edges=grow(self.edges, np.zeros((extra_e, 2), np.int32)),
            next_hop=jnp.asarray(next_hop.astype(np.int32)),
            dist=jnp.asarray(dist),
            node_mask=grow(self.node_mask, np.zeros(extra_n, bool)),
            edge_mask=grow(self.edge_mask, np.zeros(extra_e, bool)),
        )


def street_graph_grid(nx: int, ny: int, spacing: float = 100.0) -> StreetGraph:
    """A Manhattan grid of ``nx * ny`` nodes ``spacing`` metres apart, corner at the origin.

    Node ``k = iy * nx + ix`` sits at ``(ix * spacing, iy * spacing)``.
    """
    nx = _checks.check_int("nx", nx, lo=1)
    ny = _checks.check_int("ny", ny, lo=1)
    if nx * ny < 2:
        raise ValueError(f"nx * ny = {nx * ny}; a street graph needs at least 2 nodes")
    spacing = _checks.check_float("spacing", spacing, lo=0.0, lo_open=True)
    iy, ix = np.divmod(np.arange(nx * ny), nx)
    nodes = np.stack([ix, iy], axis=1) * spacing
    k = np.arange(nx * ny).reshape(ny, nx)
    horizontal = np.stack([k[:, :-1].ravel(), k[:, 1:].ravel()], axis=1)
    vertical = np.stack([k[:-1, :].ravel(), k[1:, :].ravel()], axis=1)
    return StreetGraph.from_edges(nodes, np.concatenate([horizontal, vertical]))


def _check_edges(edges, n: int) -> np.ndarray:
    arr = np.asarray(edges)
    if arr.size == 0:
        raise ValueError("edges is empty; a street graph needs at least 1 edge")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"edges has shape {arr.shape}; expected (E, 2)")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"edges must be an integer array, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise ValueError(f"edges has node index {bad} out of range; allowed [0, {n - 1}]")
    if np.any(arr[:, 0] == arr[:, 1]):
        i = arr[arr[:, 0] == arr[:, 1]][0, 0]
        raise ValueError(f"edges has a self loop ({i}, {i}); self loops are not allowed")
    return np.unique(np.sort(arr, axis=1), axis=0).astype(np.int64)


def _check_bounds(nodes: np.ndarray, area_min, area_max) -> tuple[np.ndarray, np.ndarray]:
    lo = nodes.min(axis=0) if area_min is None else _checks.check_array(
        "area_min", area_min, shape=(2,)
    )
    hi = nodes.max(axis=0) if area_max is None else _checks.check_array(
        "area_max", area_max, shape=(2,)
    )
    if np.any(nodes < lo) or np.any(nodes > hi):
        raise ValueError(
            f"area [{lo.tolist()}, {hi.tolist()}] does not contain every node; node bounding "
            f"box is [{nodes.min(axis=0).tolist()}, {nodes.max(axis=0).tolist()}]"
        )
    return lo, hi


@struct.dataclass
class StreetVehiclesParams:
    """graph: a ``StreetGraph`` (padded to a common size to batch different maps);
    dt [] s per step; speed_min/speed_max [] m/s. ``area_min``/``area_max`` are the graph's."""

    graph: StreetGraph
    dt: jax.Array
    speed_min: jax.Array
    speed_max: jax.Array

    @property
    def area_min(self) -> jax.Array:
        """``[2]`` float32, metres: lower-left corner of the graph's map area."""
        return self.graph.area_min

    @property
    def area_max(self) -> jax.Array:
        """``[2]`` float32, metres: upper-right corner of the graph's map area."""
        return self.graph.area_max


@struct.dataclass
class StreetVehiclesState:
    """pos [U, 2] m; the vehicle is on the edge ``edge_from -> edge_to`` [U] int32,
    ``offset`` [U] m past ``edge_from``; dest [U] int32 destination node; speed [U] m/s.
    A vehicle standing on node n has ``edge_from = edge_to = n`` and offset 0."""

    pos: jax.Array
    edge_from: jax.Array
    edge_to: jax.Array
    offset: jax.Array
    dest: jax.Array
    speed: jax.Array


class StreetVehicles(base.MobilityModel):
    """Vehicles driving on a street graph along shortest paths to random destinations.

    Each step a vehicle covers ``speed * dt`` metres along its route (following
    ``graph.next_hop``), crossing up to ``max_hops`` nodes; distance left after
    ``max_hops`` nodes is dropped, so choose ``max_hops`` above ``speed_max * dt`` over the
    shortest edge. The hop loop is a ``while_loop`` that stops as soon as no vehicle has
    distance left, so a large ``max_hops`` costs nothing when vehicles are slow. A vehicle
    that reaches its destination stops there for the rest of the step and draws a new
    destination (uniform over the other masked nodes) and a new speed in
    ``[speed_min, speed_max]``. ``graph`` (default: a 6 x 6 grid with 100 m
    blocks) only sets ``default_params``; the graph used is ``params.graph``.
    """

    Params = StreetVehiclesParams
    State = StreetVehiclesState

    def __init__(self, num_users: int, max_hops: int = 8, graph: StreetGraph | None = None):
        self.num_users = _checks.check_int("num_users", num_users, lo=1)
        self.max_hops = _checks.check_int("max_hops", max_hops, lo=1)
        self._graph = street_graph_grid(6, 6, 100.0) if graph is None else graph
        _check_graph(self._graph)

    @property
    def default_params(self) -> StreetVehiclesParams:
        return StreetVehiclesParams(
            graph=self._graph,
            dt=base.f32(1.0),
            speed_min=base.f32(5.0),
            speed_max=base.f32(15.0),
        )

    def check_params(self, params: StreetVehiclesParams, rules: Rules = CONCRETE) -> None:
        _check_graph(params.graph, rules)
        rules.array("dt", params.dt, shape=(), lo=0.0, lo_open=True)
        base.check_range("speed_min", params.speed_min, "speed_max", params.speed_max, rules=rules)

    def init(self, key: jax.Array, params: StreetVehiclesParams) -> StreetVehiclesState:
        """Vehicles at uniform points of their first edge, routed to uniform destinations."""
        g = params.graph
        u = jax.random.uniform(key, (4, self.num_users), dtype=jnp.float32)
        csum = jnp.cumsum(g.node_mask.astype(jnp.int32))
        count = csum[-1]
        start_rank = jnp.minimum(jnp.floor(u[0] * count).astype(jnp.int32), count - 1)
        start = jnp.searchsorted(csum, start_rank + 1).astype(jnp.int32)
        dest = _other_node(u[1], start, csum)
        to = g.next_hop[start, dest]
        offset = u[2] * _length(g.nodes, start, to)
        speed = params.speed_min + u[3] * (params.speed_max - params.speed_min)
        return StreetVehiclesState(
            pos=_position(g, start, to, offset),
            edge_from=start,
            edge_to=to,
            offset=offset,
            dest=dest,
            speed=speed,
        )

    def step(self, key: jax.Array, state: StreetVehiclesState, params: StreetVehiclesParams):
        g = params.graph
        dest = state.dest

        def active(carry):
            i, frm, _, _, budget = carry
            return (i < self.max_hops) & jnp.any((budget > 0.0) & (frm != dest))

        def hop(carry):
            i, frm, to, offset, budget = carry
            left = jnp.maximum(_length(g.nodes, frm, to) - offset, 0.0)
            reach = budget >= left
            return (
                i + 1,
                jnp.where(reach, to, frm),
                jnp.where(reach, g.next_hop[to, dest], to),
                jnp.where(reach, 0.0, offset + budget),
                jnp.where(reach, budget - left, 0.0),
            )

        carry = (0, state.edge_from, state.edge_to, state.offset, state.speed * params.dt)
        _, frm, to, offset, _ = jax.lax.while_loop(active, hop, carry)

        arrived = frm == dest
        u = jax.random.uniform(key, (2, self.num_users), dtype=jnp.float32)
        csum = jnp.cumsum(g.node_mask.astype(jnp.int32))
        dest = jnp.where(arrived, _other_node(u[0], frm, csum), dest)
        speed = params.speed_min + u[1] * (params.speed_max - params.speed_min)
        to = jnp.where(arrived, g.next_hop[frm, dest], to)
        return StreetVehiclesState(
            pos=_position(g, frm, to, offset),
            edge_from=frm,
            edge_to=to,
            offset=offset,
            dest=dest,
            speed=jnp.where(arrived, speed, state.speed),
        )


def _length(nodes: jax.Array, i: jax.Array, j: jax.Array) -> jax.Array:
    """Euclidean length of edges ``i -> j`` (m)."""
    return jnp.linalg.norm(nodes[j] - nodes[i], axis=-1)


def _position(g: StreetGraph, frm: jax.Array, to: jax.Array, offset: jax.Array) -> jax.Array:
    """Point ``offset`` metres along the edge ``frm -> to``: ``[U, 2]``, clipped to the area."""
    frac = offset / jnp.maximum(_length(g.nodes, frm, to), 1e-6)
    pos = g.nodes[frm] + frac[:, None] * (g.nodes[to] - g.nodes[frm])
    return base.clip_to_area(pos, g.area_min, g.area_max)


def _other_node(u: jax.Array, current: jax.Array, csum: jax.Array) -> jax.Array:
    """A masked node other than ``current``, uniform given ``u`` in [0, 1).

    ``csum`` is the cumulative count of masked nodes; ``current`` must be masked.
    """
    count = csum[-1]
    rank = jnp.minimum(jnp.floor(u * (count - 1)).astype(jnp.int32), count - 2)
    rank = jnp.where(rank >= csum[current] - 1, rank + 1, rank)
    return jnp.searchsorted(csum, rank + 1).astype(jnp.int32)


def _check_graph(graph, rules: Rules = CONCRETE) -> None:
    if not isinstance(graph, StreetGraph):
        raise TypeError(f"graph must be a StreetGraph, got {type(graph).__name__}")
    n, e = graph.nodes.shape[0], graph.edges.shape[0]
    for name, value, shape in (
        ("graph.nodes", graph.nodes, (n, 2)),
        ("graph.next_hop", graph.next_hop, (n, n)),
        ("graph.dist", graph.dist, (n, n)),
        ("graph.area_min", graph.area_min, (2,)),
        ("graph.area_max", graph.area_max, (2,)),
        ("graph.node_mask", graph.node_mask, (n,)),
        ("graph.edge_mask", graph.edge_mask, (e,)),
    ):
        rules.array(name, value, shape=shape)
    rules.require(rules.xp.sum(graph.node_mask) >= 2,
                  "graph.node_mask marks fewer than 2 nodes ({}); vehicles need at least 2",
                  rules.xp.sum(graph.node_mask))

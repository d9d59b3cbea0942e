"""Street maps for Map2Traj: procedural generator, bundled real OSM graphs, rasters.

* ``procedural_street_map(seed, size_m, **style)``: a connected ``StreetGraph`` in the square
  ``[0, size_m]^2`` -- an irregular (rotated, jittered, thinned) grid or an organic network
  (Gabriel graph of spaced random points), blocks denser near a random centre, plus straight
  arterials crossing the map. NumPy/SciPy, deterministic under ``seed``.
* ``load_osm_graph(path_or_name)``: a real street network converted from OpenStreetMap
  (``available_real_maps()`` lists the bundled ones; data (c) OpenStreetMap contributors,
  ODbL, see ``dtwin_jax/data/osm/ATTRIBUTION``).
* ``rasterize(graph, resolution, road_width_m, bounds)``: ``[H, W, 2]`` float32 image in
  [0, 1] with channels (roads, junctions); pure JAX, jittable with static ``resolution``.
"""

from __future__ import annotations

import zipfile
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import Delaunay, cKDTree

from dtwin_jax import _checks
from dtwin_jax.metrics.trajectories import _pad_rows, _pow2, distance_to_segments
from dtwin_jax.mobility.streets import StreetGraph

STYLES = ("grid", "organic")
OSM_DIR = Path(__file__).resolve().parents[2] / "data" / "osm"
_SNAP_M = 2.0  # an arterial crossing closer than this to a node joins that node


# ----------------------------------------------------------------------------- procedural


def procedural_street_map(
    seed: int,
    size_m: float = 1000.0,
    *,
    style: str | None = None,
    block_m: float | None = None,
    jitter: float | None = None,
    removal: float | None = None,
    arterials: int | None = None,
    rotation_deg: float | None = None,
    density_gain: float | None = None,
    holes: int | None = None,
) -> StreetGraph:
    """A random connected street network in ``[0, size_m]^2`` (metres).

    Every style option left as None is drawn from ``seed``:
      style         "grid" (p = 0.6) or "organic"
      block_m       typical block side, U(60, 220) m
      jitter        node displacement as a fraction of the local block, U(0, 0.25)
      removal       probability of dropping a street that is not needed for connectivity,
                    U(0.05, 0.5)
      holes         number of street-free discs (parks, water, rail yards), radius
                    U(0.08, 0.22) size_m each, 0..3
      arterials     number of straight through roads at random angles, 0..3
      rotation_deg  rotation of the grid, 0 (p = 0.3) or U(0, 90)
      density_gain  blocks shrink by this fraction near a random centre, U(0, 0.6)
    Returns a ``StreetGraph`` with area ``[0, size_m]^2`` and only the largest connected
    component (so every node reaches every other).
    """
    seed = _checks.check_int("seed", seed, lo=0)
    size_m = _checks.check_float("size_m", size_m, lo=50.0, hi=1e5)
    rng = np.random.default_rng(seed)
    draws = {  # drawn in a fixed order so fixing one option leaves the others unchanged
        "style": STYLES[int(rng.random() >= 0.6)],
        "block_m": rng.uniform(60.0, 220.0),
        "jitter": rng.uniform(0.0, 0.25),
        "removal": rng.uniform(0.05, 0.5),
        "arterials": int(rng.integers(0, 4)),
        "rotation_deg": 0.0 if rng.random() < 0.3 else rng.uniform(0.0, 90.0),
        "density_gain": rng.uniform(0.0, 0.6),
        "holes": int(rng.integers(0, 4)),
    }
    given = {
        "style": style, "block_m": block_m, "jitter": jitter, "removal": removal,
        "arterials": arterials, "rotation_deg": rotation_deg, "density_gain": density_gain,
        "holes": holes,
    }  # fmt: skip
    opt = {k: draws[k] if v is None else v for k, v in given.items()}
    _checks.check_choice("style", opt["style"], STYLES)
    block = _checks.check_float("block_m", opt["block_m"], lo=10.0, hi=size_m)
    jit = _checks.check_float("jitter", opt["jitter"], lo=0.0, hi=0.3)
    removal = _checks.check_float("removal", opt["removal"], lo=0.0, hi=1.0)
    num_art = _checks.check_int("arterials", opt["arterials"], lo=0, hi=20)
    rot = np.radians(_checks.check_float("rotation_deg", opt["rotation_deg"], lo=-360, hi=360))
    gain = _checks.check_float("density_gain", opt["density_gain"], lo=0.0, hi=0.9)
    num_holes = _checks.check_int("holes", opt["holes"], lo=0, hi=20)

    # Build around the map centre on a square of half side 0.75 size_m (grid; rotated by any
    # angle it still covers the map, whose corners are size_m / sqrt 2 away) or size_m
    # (organic, whose warp towards the dense core pulls points inwards).
    centre = rng.uniform(-0.3, 0.3, size=2) * size_m
    scale = 0.35 * size_m
    if opt["style"] == "grid":
        nodes, edges = _irregular_grid(rng, 0.75 * size_m, block, jit, centre, scale, gain)
    else:
        nodes, edges = _organic(rng, size_m, block, jit, centre, scale, gain)
    edges = _thin(rng, nodes, edges, removal)
    for _ in range(num_holes):
        hole = rng.uniform(-0.5, 0.5, size=2) * size_m
        inside = np.sum((nodes - hole) ** 2, axis=1) < (rng.uniform(0.08, 0.22) * size_m) ** 2
        edges = edges[~inside[edges].any(axis=1)]
    cos, sin = np.cos(rot), np.sin(rot)
    nodes = nodes @ np.array([[cos, sin], [-sin, cos]])
    for _ in range(num_art):
        through = rng.uniform(-0.3, 0.3, size=2) * size_m
        angle = rng.uniform(0.0, np.pi)
        half = 0.75 * size_m * np.array([np.cos(angle), np.sin(angle)])
        nodes, edges = _insert_line(nodes, edges, through - 2 * half, through + 2 * half)
    nodes, edges = crop_edges(nodes + size_m / 2, edges, np.zeros(2), np.full(2, size_m))
    return StreetGraph.from_edges(nodes, edges, area_min=np.zeros(2), area_max=np.full(2, size_m))


def _irregular_grid(rng, half, block, jit, centre, scale, gain):
    """Jittered grid on ``[-half, half]^2`` whose line spacing shrinks near ``centre``."""

    def lines(c, blk):
        pos = [-half - rng.uniform(0, blk)]
        while pos[-1] < half:
            shrink = 1.0 - gain * np.exp(-((pos[-1] - c) ** 2) / (2 * scale**2))
            pos.append(pos[-1] + blk * shrink * rng.uniform(0.7, 1.3))
        return np.array(pos)

    xs = lines(centre[0], block)
    ys = lines(centre[1], block * rng.uniform(0.6, 1.8))
    gx, gy = np.meshgrid(xs, ys)  # [ny, nx]
    nodes = np.stack([gx.ravel(), gy.ravel()], axis=1)
    # Displacements below 0.375 of the smallest gap: neighbouring streets never cross.
    noise = np.clip(rng.normal(size=nodes.shape), -1.5, 1.5)
    nodes = nodes + jit * noise * np.array([np.diff(xs).min(), np.diff(ys).min()])
    k = np.arange(len(xs) * len(ys)).reshape(len(ys), len(xs))
    edges = np.concatenate([
        np.stack([k[:, :-1].ravel(), k[:, 1:].ravel()], 1),
        np.stack([k[:-1].ravel(), k[1:].ravel()], 1),
    ])  # fmt: skip
    return nodes, edges


def _organic(rng, half, block, jit, centre, scale, gain):
    """Gabriel graph of a jittered triangular lattice (spacing ``block``) on [-half, half]^2,
    warped towards ``centre`` so blocks there shrink by up to ``gain``."""
    rows = np.arange(-half, half + block, block * np.sqrt(0.75))
    cols = np.arange(-half, half + block, block)
    gx, gy = np.meshgrid(cols, rows)
    gx = gx + 0.5 * block * (np.arange(len(rows)) % 2)[:, None]
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    pts = pts + rng.uniform(-1, 1, size=pts.shape) * block * (0.2 + jit)
    rel = pts - centre
    shrink = 1.0 - gain * np.exp(-np.sum(rel**2, axis=1) / (2 * scale**2))
    pts = centre + rel * shrink[:, None]  # radially monotone: never folds
    tri = Delaunay(pts).simplices
    edges = np.unique(np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]]),
                              axis=1), axis=0)  # fmt: skip
    mid = 0.5 * (pts[edges[:, 0]] + pts[edges[:, 1]])
    r = 0.5 * np.linalg.norm(pts[edges[:, 0]] - pts[edges[:, 1]], axis=1)
    nearest, _ = cKDTree(pts).query(mid, k=1)
    return pts, edges[nearest >= r * (1 - 1e-9)]  # Gabriel: empty diametral circle


def _thin(rng, nodes, edges, removal):
    """Drop each edge with probability ``removal`` unless it is on a random spanning tree."""
    n = len(nodes)
    weight = rng.uniform(1.0, 2.0, size=len(edges))
    tree = minimum_spanning_tree(coo_matrix((weight, (edges[:, 0], edges[:, 1])), shape=(n, n)))
    tree = tree.tocoo()
    on_tree = set(zip(np.minimum(tree.row, tree.col).tolist(),
                      np.maximum(tree.row, tree.col).tolist(), strict=True))  # fmt: skip
    keep = rng.random(len(edges)) >= removal
    keep |= np.array([(min(i, j), max(i, j)) in on_tree for i, j in edges.tolist()], bool)
    return edges[keep]


def _insert_line(nodes, edges, p, q):
    """Add the straight road ``p -> q``, splitting every edge it crosses at the crossing."""
    a, b = nodes[edges[:, 0]], nodes[edges[:, 1]]
    r, s = q - p, b - a
    cross = lambda u, v: u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    denom = cross(r, s)
    ok = np.abs(denom) > 1e-9
    safe = np.where(ok, denom, 1.0)
    t = cross(a - p, s) / safe
    u = cross(a - p, r) / safe
    hit = ok & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    idx = np.flatnonzero(hit)
    length = np.linalg.norm(s[idx], axis=1)
    at_a, at_b = u[idx] * length < _SNAP_M, (1 - u[idx]) * length < _SNAP_M
    split = ~(at_a | at_b)
    new_ids = len(nodes) + np.arange(split.sum())
    chain_ids = np.where(at_a, edges[idx, 0], edges[idx, 1])
    chain_ids[split] = new_ids
    nodes = np.concatenate([nodes, p + t[idx][split, None] * r, [p, q]])
    old = edges[idx[split]]
    edges = np.concatenate([
        np.delete(edges, idx[split], axis=0),
        np.stack([old[:, 0], new_ids], 1), np.stack([new_ids, old[:, 1]], 1),
    ])  # fmt: skip
    order = np.argsort(t[idx])
    chain = np.concatenate([[len(nodes) - 2], chain_ids[order], [len(nodes) - 1]])
    chain = chain[np.concatenate([[True], chain[1:] != chain[:-1]])]
    return nodes, np.concatenate([edges, np.stack([chain[:-1], chain[1:]], 1)])


# ----------------------------------------------------------------------------- cropping


def crop_edges(nodes, edges, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Clip a street network to the box ``[lo, hi]`` (metres) and keep its largest component.

    ``nodes [N, 2]``, ``edges [E, 2]`` (NumPy). Edges crossing the border end at a new node
    on it; unused nodes are dropped and indices renumbered. Returns ``(nodes [N', 2] float64,
    edges [E', 2] int64)`` with each undirected edge once.
    """
    nodes = np.asarray(nodes, np.float64)
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    a, b = nodes[edges[:, 0]], nodes[edges[:, 1]]
    d = b - a
    t0, t1 = np.zeros(len(edges)), np.ones(len(edges))
    outside = np.zeros(len(edges), bool)
    for k in range(2):  # Liang-Barsky: entering / leaving parameters per border
        for p, q in ((-d[:, k], a[:, k] - lo[k]), (d[:, k], hi[k] - a[:, k])):
            ratio = q / np.where(p == 0, 1.0, p)
            t0 = np.where(p < 0, np.maximum(t0, ratio), t0)
            t1 = np.where(p > 0, np.minimum(t1, ratio), t1)
            outside |= (p == 0) & (q < 0)
    keep = ~outside & ((t1 - t0) * np.linalg.norm(d, axis=1) > 1e-3)
    a, d, t0, t1, edges = a[keep], d[keep], t0[keep], t1[keep], edges[keep]
    cut0, cut1 = t0 > 0, t1 < 1
    n = len(nodes)
    ids0 = n + np.arange(cut0.sum())
    ids1 = n + len(ids0) + np.arange(cut1.sum())
    nodes = np.concatenate([nodes, a[cut0] + t0[cut0, None] * d[cut0],
                            a[cut1] + t1[cut1, None] * d[cut1]])  # fmt: skip
    edges = edges.copy()
    edges[cut0, 0], edges[cut1, 1] = ids0, ids1
    return largest_component(np.clip(nodes, lo, hi), edges)


def largest_component(nodes, edges) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and edges of the largest connected component, renumbered (NumPy)."""
    nodes, edges = np.asarray(nodes, np.float64), np.asarray(edges, np.int64).reshape(-1, 2)
    if len(edges) == 0:
        raise ValueError("the street network has no edge inside the region")
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    edges = edges[edges[:, 0] != edges[:, 1]]
    n = len(nodes)
    adj = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(adj, directed=False)
    sizes = np.bincount(label[edges[:, 0]], minlength=label.max() + 1)
    keep = label == np.argmax(sizes)
    new = np.cumsum(keep) - 1
    edges = edges[keep[edges[:, 0]]]
    return nodes[keep], new[edges]


def crop(graph: StreetGraph, lo, hi) -> StreetGraph:
    """The part of ``graph`` inside the box ``[lo, hi]`` (its largest component), area = box."""
    lo = _checks.check_array("lo", lo, shape=(2,))
    hi = _checks.check_array("hi", hi, shape=(2,))
    if np.any(hi <= lo):
        raise ValueError(f"crop box [{lo.tolist()}, {hi.tolist()}] is empty; need hi > lo")
    mask = np.asarray(graph.edge_mask)
    nodes, edges = crop_edges(np.asarray(graph.nodes), np.asarray(graph.edges)[mask], lo, hi)
    return StreetGraph.from_edges(nodes, edges, area_min=lo, area_max=hi)


def square_bounds(graph: StreetGraph, margin_m: float = 0.0) -> np.ndarray:
    """``[2, 2]`` square (min xy, max xy) around the graph's area, grown by ``margin_m``."""
    lo, hi = (np.asarray(v, np.float64) for v in graph.bounds)
    mid, half = 0.5 * (lo + hi), 0.5 * np.max(hi - lo) + margin_m
    return np.stack([mid - half, mid + half]).astype(np.float32)


# ----------------------------------------------------------------------------- real maps


def available_real_maps() -> list[str]:
    """Names of the bundled real street maps (OpenStreetMap extracts, ODbL)."""
    return sorted(p.stem for p in OSM_DIR.glob("*.npz"))


def load_osm_graph(path_or_name: str | Path) -> StreetGraph:
    """Load a converted OpenStreetMap street network (``.npz``) as a ``StreetGraph``.

    ``path_or_name`` is a bundled map name (see ``available_real_maps()``) or a path to an
    ``.npz`` with ``nodes [N, 2]`` (metres), ``edges [E, 2]`` (int) and optionally
    ``bounds [2, 2]`` (the map area). Raises FileNotFoundError for a missing file and
    ValueError for a file that is not such an archive or has wrong shapes.
    """
    path = Path(path_or_name)
    if str(path_or_name) in available_real_maps():
        path = OSM_DIR / f"{path_or_name}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"no street map file {str(path)!r}; bundled maps: {available_real_maps()}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{str(path)!r} is not a readable .npz street map: {err}") from err
    missing = {"nodes", "edges"} - set(arrays)
    if missing:
        raise ValueError(f"{str(path)!r} lacks array(s) {sorted(missing)}; expected nodes, edges")
    nodes = _checks.check_array("nodes", arrays["nodes"], shape=(None, 2))
    bounds = arrays.get("bounds")
    if bounds is None:
        return StreetGraph.from_edges(nodes, arrays["edges"])
    bounds = _checks.check_array("bounds", bounds, shape=(2, 2))
    return StreetGraph.from_edges(nodes, arrays["edges"], area_min=bounds[0], area_max=bounds[1])


# ----------------------------------------------------------------------------- raster


def rasterize(
    graph: StreetGraph,
    resolution: int = 64,
    road_width_m: float | jax.Array = 8.0,
    bounds: jax.Array | None = None,
) -> jax.Array:
    """Image ``[H, W, 2]`` float32 in [0, 1] of the map: channel 0 roads, 1 junctions.

    ``H = W = resolution`` pixels cover ``bounds [2, 2]`` (min xy, max xy; default the
    graph's area): pixel ``[i, j]`` is centred at ``x = x_min + (j + 0.5) dx``,
    ``y = y_min + (i + 0.5) dy`` (row index grows with y). With ``h = max(road_width_m,
    pixel) / 2``, roads are 1 within ``h`` of a street and fall linearly to 0 at ``2 h``;
    junctions (nodes of degree >= 3) are Gaussian blobs of standard deviation ``h``.
    """
    resolution = _checks.check_int("resolution", resolution, lo=2, hi=4096)
    if bounds is None:
        bounds = jnp.stack(graph.bounds)
    # Pad to powers of two (masked out) so maps of different sizes share compiled kernels.
    n = max(256, _pow2(graph.num_nodes))
    e = max(256, _pow2(graph.num_edges))
    args = (_pad_rows(graph.nodes, n, jnp.float32), _pad_rows(graph.edges, e, jnp.int32),
            _pad_rows(graph.edge_mask, e, bool), _pad_rows(graph.node_mask, n, bool))  # fmt: skip
    return _raster(*args, jnp.asarray(bounds, jnp.float32), road_width_m, resolution)


@partial(jax.jit, static_argnums=6)
def _raster(nodes, edges, edge_mask, node_mask, bounds, road_width_m, resolution):
    lo, hi = bounds[0], bounds[1]
    cells = (jnp.arange(resolution, dtype=jnp.float32) + 0.5) / resolution
    gy, gx = jnp.meshgrid(cells, cells, indexing="ij")
    centres = lo + jnp.stack([gx, gy], axis=-1) * (hi - lo)
    half = 0.5 * jnp.maximum(road_width_m, jnp.max(hi - lo) / resolution)
    road_d = distance_to_segments(centres, nodes[edges[:, 0]], nodes[edges[:, 1]], edge_mask)
    roads = jnp.clip(2.0 - road_d / half, 0.0, 1.0)
    ends = jnp.repeat(edge_mask, 2).astype(jnp.float32)
    degree = jnp.zeros(nodes.shape[0]).at[edges.ravel()].add(ends)
    junction_d = distance_to_segments(centres, nodes, nodes, (degree >= 3) & node_mask)
    blobs = jnp.exp(-0.5 * (jnp.minimum(junction_d, 1e6) / half) ** 2)
    return jnp.stack([roads, blobs], axis=-1).astype(jnp.float32)

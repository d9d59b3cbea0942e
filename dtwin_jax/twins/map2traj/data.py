"""Training data for Map2Traj: vehicles routed on street maps, rasters, normalisation.

``street_trajectories`` drives vehicles along shortest paths between random points on the
streets (trips chain: on arrival a vehicle heads to a new random destination), with a cruise
speed per trip, braking before turns and destinations, bounded acceleration and Gaussian GPS
noise, sampled every ``dt_s`` seconds. These stand in for the city trajectories of the
Map2Traj paper. ``make_dataset`` pairs them with rasters of procedural maps. Generation is
vectorised NumPy (all vehicles of a map advance together).
"""

from __future__ import annotations

import numpy as np

from dtwin_jax import _checks
from dtwin_jax.mobility.streets import StreetGraph
from dtwin_jax.twins.map2traj.maps import procedural_street_map, rasterize, square_bounds

_MAX_HOPS = 64  # nodes one vehicle may pass within one sampling step


def street_trajectories(
    graph: StreetGraph,
    seed: int,
    num: int,
    length: int,
    dt_s: float = 2.0,
    *,
    speed_min: float = 6.0,
    speed_max: float = 15.0,
    accel: float = 2.0,
    decel: float = 3.0,
    turn_speed_min: float = 2.0,
    noise_std_m: float = 3.0,
) -> np.ndarray:
    """``num`` vehicle trajectories ``[num, length, 2]`` (metres), points ``dt_s`` s apart.

    Each vehicle starts at a random point of a random street (chosen with probability
    proportional to street length) and drives along the shortest path (``graph.next_hop``)
    to a random destination point, then on to a new one. Per trip it draws a cruise speed in
    ``[speed_min, speed_max]`` m/s; before each node it brakes (``decel`` m/s^2) to
    ``max(turn_speed_min, cruise * (1 + cos(turn)) / 2)`` and to ``turn_speed_min`` before a
    destination; it accelerates at ``accel`` m/s^2. Independent Gaussian GPS noise of standard
    deviation ``noise_std_m`` is added to every point. float32 metres; NumPy.
    """
    seed = _checks.check_int("seed", seed, lo=0)
    num = _checks.check_int("num", num, lo=1)
    length = _checks.check_int("length", length, lo=1)
    dt_s = _checks.check_float("dt_s", dt_s, lo=0.0, lo_open=True)
    speed_min = _checks.check_float("speed_min", speed_min, lo=0.0, lo_open=True)
    speed_max = _checks.check_float("speed_max", speed_max, lo=speed_min)
    accel = _checks.check_float("accel", accel, lo=0.0, lo_open=True)
    decel = _checks.check_float("decel", decel, lo=0.0, lo_open=True)
    turn_min = _checks.check_float("turn_speed_min", turn_speed_min, lo=0.0, hi=speed_min,
                                   lo_open=True)  # fmt: skip
    noise = _checks.check_float("noise_std_m", noise_std_m, lo=0.0)
    return _Fleet(graph, np.random.default_rng(seed), num, speed_min, speed_max).run(
        length, dt_s, accel, decel, turn_min, noise
    )


class _Fleet:
    """State of ``num`` vehicles on one map (NumPy arrays, one row per vehicle)."""

    def __init__(self, graph: StreetGraph, rng, num, speed_min, speed_max):
        self.rng, self.num = rng, num
        self.speed_range = (speed_min, speed_max)
        self.xy = np.asarray(graph.nodes, np.float64)
        self.next_hop = np.asarray(graph.next_hop)
        self.dist = np.asarray(graph.dist, np.float64)
        ok = np.asarray(graph.node_mask)
        edges = np.asarray(graph.edges)[np.asarray(graph.edge_mask)]
        self.edges = edges[ok[edges].all(axis=1)]
        lengths = np.linalg.norm(self.xy[self.edges[:, 0]] - self.xy[self.edges[:, 1]], axis=1)
        self.edge_p = lengths / lengths.sum()
        # Start: a random point of a random street, then depart towards a destination.
        e, f = self._random_points(num)
        self.pos = self._point(e, f)
        self.edge, self.frac = e, f
        self.speed = rng.uniform(0.0, speed_max, num)
        self.target = np.zeros(num, np.int64)  # node driven to (unless ``final``)
        self.entry = np.zeros(num, np.int64)  # node where the route enters the dest street
        self.dest = np.zeros((num, 2))  # destination point, metres
        self.cruise = np.zeros(num)  # cruise speed of the trip, m/s
        self.final = np.zeros(num, bool)  # on the destination street, driving to ``dest``
        self._depart(np.ones(num, bool))

    def _random_points(self, k):
        return self.rng.choice(len(self.edges), size=k, p=self.edge_p), self.rng.random(k)

    def _point(self, e, f):
        a, b = self.xy[self.edges[e, 0]], self.xy[self.edges[e, 1]]
        return a + f[:, None] * (b - a)

    def _depart(self, m):
        """Vehicles ``m`` (standing on street ``edge`` at ``frac``) get a new destination."""
        k = int(m.sum())
        de, df = self._random_points(k)
        a, b = self.edges[self.edge[m]].T
        da, db = self.edges[de].T
        seg = np.linalg.norm(self.xy[b] - self.xy[a], axis=1)
        dseg = np.linalg.norm(self.xy[db] - self.xy[da], axis=1)
        out = np.stack([self.frac[m] * seg, (1 - self.frac[m]) * seg], 1)  # to a, to b
        inn = np.stack([df * dseg, (1 - df) * dseg], 1)  # from da, from db
        exits, entries = np.stack([a, b], 1), np.stack([da, db], 1)
        total = out[:, :, None] + self.dist[exits[:, :, None], entries[:, None, :]]
        total = total + inn[:, None, :]
        best = np.argmin(total.reshape(k, 4), axis=1)
        rows = np.arange(k)
        self.target[m] = exits[rows, best // 2]
        self.entry[m] = entries[rows, best % 2]
        self.dest[m] = self._point(de, df)
        self.edge[m], self.frac[m] = de, df
        self.cruise[m] = self.rng.uniform(*self.speed_range, k)
        self.final[m] = False

    def _aim(self):
        """Current waypoint ``[K, 2]`` and the one after it (``final`` = heading to dest)."""
        here = np.where(self.final[:, None], self.dest, self.xy[self.target])
        after_node = self.next_hop[self.target, self.entry]
        after = np.where((self.target == self.entry)[:, None], self.dest, self.xy[after_node])
        return here, np.where(self.final[:, None], self.dest, after)

    def _arrive(self, m):
        """Vehicles ``m`` reached their waypoint: next node, the destination, or a new trip."""
        done = m & self.final
        at_entry = m & ~self.final & (self.target == self.entry)
        on = m & ~self.final & ~at_entry
        self.target[on] = self.next_hop[self.target[on], self.entry[on]]
        self.final[at_entry] = True
        self._depart(done)

    def run(self, length, dt, accel, decel, turn_min, noise):
        out = np.empty((length, self.num, 2))
        for t in range(length):
            out[t] = self.pos
            here, after = self._aim()
            to_here, onward = here - self.pos, after - here
            gap = np.linalg.norm(to_here, axis=1)
            cos = np.sum(to_here * onward, 1) / np.maximum(gap * np.linalg.norm(onward, axis=1),
                                                           1e-9)  # fmt: skip
            corner = np.where(self.final, turn_min, np.maximum(turn_min,
                              self.cruise * (1 + cos) / 2))  # fmt: skip
            limit = np.minimum(self.cruise, np.sqrt(corner**2 + 2 * decel * gap))
            self.speed = np.maximum(np.minimum(limit, self.speed + accel * dt), turn_min)
            self._move(self.speed * dt)
        traj = out.transpose(1, 0, 2) + noise * self.rng.normal(size=(self.num, length, 2))
        return traj.astype(np.float32)

    def _move(self, budget):
        """Advance every vehicle ``budget`` metres along its route."""
        for _ in range(_MAX_HOPS):
            here, _ = self._aim()
            step = here - self.pos
            gap = np.linalg.norm(step, axis=1)
            reach = budget >= gap
            part = ~reach & (budget > 0)
            self.pos[part] += step[part] * (budget[part] / np.maximum(gap[part], 1e-12))[:, None]
            budget = np.where(part, 0.0, budget)
            self.pos[reach] = here[reach]
            budget = np.where(reach, budget - gap, budget)
            if not reach.any():
                return
            self._arrive(reach)


def normalize(traj, bounds):
    """Map metres ``traj [..., 2]`` into [-1, 1] over ``bounds [..., 2, 2]`` (min xy, max xy).

    ``bounds`` is ``[2, 2]`` or has the leading axes of ``traj`` up to any trailing ones
    (e.g. ``[M, 2, 2]`` for ``traj [M, K, L, 2]``). Works on NumPy and JAX arrays.
    """
    lo, span = _frame(traj, bounds)
    return 2.0 * (traj - lo) / span - 1.0


def denormalize(traj, bounds):
    """Inverse of ``normalize``: [-1, 1] coordinates back to metres."""
    lo, span = _frame(traj, bounds)
    return (traj + 1.0) * 0.5 * span + lo


def _frame(traj, bounds):
    lead = bounds.shape[:-2]
    extra = (1,) * (traj.ndim - 1 - len(lead))
    lo = bounds[..., 0, :].reshape(lead + extra + (2,))
    hi = bounds[..., 1, :].reshape(lead + extra + (2,))
    span = hi - lo
    return lo, span + (span == 0) * 1e-6


def map_dataset(
    graphs: list[StreetGraph],
    seed: int,
    trajs_per_map: int,
    length: int,
    resolution: int = 64,
    *,
    road_width_m: float = 8.0,
    **traj_options,
) -> dict[str, np.ndarray]:
    """Rasters and normalised trajectories of given maps (e.g. a real map as a test set).

    Each map's frame is the square around its area (``maps.square_bounds``). Returns
    ``raster [M, H, W, 2] float32`` (roads, junctions; H = W = resolution),
    ``traj [M, K, L, 2] float32`` in [-1, 1] (up to GPS noise), ``bounds [M, 2, 2] float32``
    (min xy, max xy, metres). ``traj_options`` go to ``street_trajectories``.
    """
    seed = _checks.check_int("seed", seed, lo=0)
    resolution = _checks.check_int("resolution", resolution, lo=2, hi=4096)
    seeds = np.random.SeedSequence(seed).generate_state(len(graphs))
    raster, traj, bounds = [], [], []
    for g, s in zip(graphs, seeds, strict=True):
        box = square_bounds(g)
        bounds.append(box)
        raster.append(np.asarray(rasterize(g, resolution, road_width_m, box)))
        paths = street_trajectories(g, int(s), trajs_per_map, length, **traj_options)
        traj.append(normalize(paths, box))
    return {
        "raster": np.stack(raster).astype(np.float32),
        "traj": np.stack(traj).astype(np.float32),
        "bounds": np.stack(bounds).astype(np.float32),
    }


def make_dataset(
    seed: int,
    num_maps: int,
    trajs_per_map: int,
    length: int,
    resolution: int = 64,
    *,
    size_m: float = 1000.0,
    road_width_m: float = 8.0,
    **traj_options,
) -> dict[str, np.ndarray]:
    """Training set on ``num_maps`` procedural maps of side ``size_m`` (see ``map_dataset``)."""
    seed = _checks.check_int("seed", seed, lo=0)
    num_maps = _checks.check_int("num_maps", num_maps, lo=1)
    map_seeds = np.random.SeedSequence([seed, 1]).generate_state(num_maps)
    graphs = [procedural_street_map(int(s), size_m) for s in map_seeds]
    return map_dataset(graphs, seed, trajs_per_map, length, resolution,
                       road_width_m=road_width_m, **traj_options)  # fmt: skip

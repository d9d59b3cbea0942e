"""Metrics: trajectory similarity (EDR, DTW, JSDs, Wasserstein, on-road ratio)."""

from dtwin_jax.metrics.trajectories import (
    density_jsd,
    distance_to_segments,
    distance_to_streets,
    dtw,
    dtw_batch,
    edr,
    edr_batch,
    grid_histogram,
    grid_wasserstein,
    jsd,
    on_road_ratio,
    path_lengths,
    sliced_wasserstein,
    trip_jsd,
    trip_length_jsd,
    wasserstein_1d,
)

__all__ = [
    "density_jsd",
    "distance_to_segments",
    "distance_to_streets",
    "dtw",
    "dtw_batch",
    "edr",
    "edr_batch",
    "grid_histogram",
    "grid_wasserstein",
    "jsd",
    "on_road_ratio",
    "path_lengths",
    "sliced_wasserstein",
    "trip_jsd",
    "trip_length_jsd",
    "wasserstein_1d",
]

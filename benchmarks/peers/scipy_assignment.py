"""Peer for bench_assignment: a Python loop of scipy.optimize.linear_sum_assignment."""

import numpy as np
from scipy.optimize import linear_sum_assignment


def solve_loop(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``costs[B, n, m]`` one problem at a time; returns row/col indices [B, k]."""
    pairs = [linear_sum_assignment(c) for c in costs]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

"""Peer of ``bench_dnt``: the NumPy + SciPy reference of a ``dnt-sync-v0`` step, one twin at a
time in a Python loop (``tests/envs/dnt_numpy_reference.py``: float64 NumPy, one
``scipy.optimize.linear_sum_assignment`` per BS, a NumPy GRU for the predictor).

The policy is "update and serve every covered user" (decoded from the reference's own flat
mask), the same as the JAX side of the benchmark.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "envs"))

import dnt_numpy_reference as ref  # noqa: E402

__all__ = ["measure", "ref"]


def serve_all_action(features: np.ndarray, num_users: int) -> np.ndarray:
    """Flat action ``[M]``: update bit + serve bits of the covered users (feature block 0)."""
    cov = features[:, :num_users] > 0
    return 1 + (cov * (1 << np.arange(1, num_users + 1))).sum(-1)


def measure(params, num_rbs: int, history_len: int, predictor, num_steps: int,
            seed: int = 0) -> dict:
    """Run ``num_steps`` reference steps of one twin; returns seconds and steps/s."""
    env = ref.ReferenceEnv(params, num_rbs, history_len, predictor)
    rng = np.random.default_rng(seed)
    state = env.reset(rng)
    feats = ref.features(state["pos"], state["stale"], state["last"], state["since"], env.p)
    t0 = time.perf_counter()
    for _ in range(num_steps):
        action = serve_all_action(feats, env.num_users)
        feats, _, state, _, _ = env.step(rng, state, action)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "steps": num_steps, "steps_per_s": num_steps / seconds}

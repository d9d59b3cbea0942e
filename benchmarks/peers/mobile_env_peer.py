"""Peer: mobile-env (PyPI ``mobile-env``), the Gymnasium multi-cell association simulator.

Its large scenario has 13 BSs and 30 users on a 300 m x 300 m map (Okumura-Hata pathloss,
SNR-based rates, random waypoint users, one Python object per entity). ``measure`` steps its
multi-agent handler with random actions and returns user-steps per second.
"""

from __future__ import annotations

import time

import numpy as np

LARGE_STATIONS = [(50, 100), (60, 210), (90, 60), (120, 130), (130, 215), (140, 190), (160, 70),
                  (200, 250), (210, 135), (230, 70), (250, 240), (255, 170), (265, 50)]
LARGE_SIZE_M = 300.0
LARGE_USERS = 30


def available() -> str | None:
    """None if mobile-env imports, else the reason it does not."""
    try:
        import mobile_env  # noqa: F401
    except Exception as err:  # any import failure means the peer cannot run
        return f"{type(err).__name__}: {err}"
    return None


def measure(num_steps: int = 300, seed: int = 0) -> dict:
    """Step ``mobile-large-ma-v0`` with random actions; returns timings and rates."""
    import gymnasium
    import mobile_env  # noqa: F401  (registers the scenarios)

    env = gymnasium.make("mobile-large-ma-v0")
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    core = env.unwrapped
    num_users = len(core.users)
    num_actions = len(core.stations) + 1
    steps = 0
    t0 = time.perf_counter()
    while steps < num_steps:
        actions = {ue_id: int(rng.integers(num_actions)) for ue_id in core.users}
        _, _, terminated, truncated, _ = env.step(actions)
        steps += 1
        if terminated or truncated:
            env.reset(seed=seed + steps)
    elapsed = time.perf_counter() - t0
    return {
        "num_users": num_users,
        "num_bs": len(core.stations),
        "steps": steps,
        "seconds": elapsed,
        "env_steps_per_s": steps / elapsed,
        "user_steps_per_s": steps * num_users / elapsed,
    }

"""Mobility models: pure ``init``/``step`` functions moving users inside an area (metres).

Every model is built with static sizes, has ``default_params()``, ``make_params(**overrides)``,
``init(key, params)``, ``step(key, state, params)`` and ``rollout(key, state, params, n)``;
see ``dtwin_jax.mobility.base``.
"""

from dtwin_jax.mobility.base import MobilityModel
from dtwin_jax.mobility.gauss_markov import GaussMarkov
from dtwin_jax.mobility.playback import Playback
from dtwin_jax.mobility.random_walk import RandomWalk
from dtwin_jax.mobility.streets import (
    UNREACHABLE,
    StreetGraph,
    StreetVehicles,
    street_graph_grid,
)
from dtwin_jax.mobility.waypoint import RandomWaypoint

__all__ = [
    "UNREACHABLE",
    "GaussMarkov",
    "MobilityModel",
    "Playback",
    "RandomWalk",
    "RandomWaypoint",
    "StreetGraph",
    "StreetVehicles",
    "street_graph_grid",
]

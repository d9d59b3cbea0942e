"""Mobility models: pure ``init``/``step`` functions moving users inside an area (metres).

Every model is built with static sizes, has the ``default_params`` property,
``make_params(**overrides)``, ``check_params(params)``, ``init(key, params)``,
``step(key, state, params)`` and ``rollout(key, state, params, n)``; see
``dtwin_jax.mobility.base``. ``make(name, num_users, **kwargs)`` builds a model by name
(``street``, ``waypoint``, ``gauss_markov``, ``playback``, ``random_walk``).
"""

from dtwin_jax.mobility.base import MobilityModel
from dtwin_jax.mobility.factory import MODELS, make
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
    "MODELS",
    "UNREACHABLE",
    "GaussMarkov",
    "MobilityModel",
    "Playback",
    "RandomWalk",
    "RandomWaypoint",
    "StreetGraph",
    "StreetVehicles",
    "make",
    "street_graph_grid",
]

"""``make(name, num_users, **kwargs)``: build a mobility model by name."""

from __future__ import annotations

from dtwin_jax import _checks
from dtwin_jax.mobility.base import MobilityModel
from dtwin_jax.mobility.gauss_markov import GaussMarkov
from dtwin_jax.mobility.playback import Playback
from dtwin_jax.mobility.random_walk import RandomWalk
from dtwin_jax.mobility.streets import StreetVehicles
from dtwin_jax.mobility.waypoint import RandomWaypoint

#: name -> model class; ``make`` passes its keyword arguments to the constructor
MODELS: dict[str, type[MobilityModel]] = {
    "street": StreetVehicles,
    "waypoint": RandomWaypoint,
    "gauss_markov": GaussMarkov,
    "playback": Playback,
    "random_walk": RandomWalk,
}


def make(name: str, num_users: int, **kwargs) -> MobilityModel:
    """The model registered as ``name`` (see :data:`MODELS`) for ``num_users`` users.

    ``kwargs`` go to the constructor: ``street`` takes ``max_hops`` and ``graph`` (a
    ``StreetGraph``), ``playback`` takes ``num_samples`` (required) and ``loop``; the others
    take nothing else. Unknown names and arguments raise ``ValueError``/``TypeError``.
    """
    cls = MODELS[_checks.check_choice("mobility", name, tuple(MODELS))]
    try:
        return cls(num_users, **kwargs)
    except TypeError as err:
        if "unexpected keyword" in str(err) or "required positional" in str(err):
            raise TypeError(f"mobility {name!r} ({cls.__name__}): {err}") from err
        raise

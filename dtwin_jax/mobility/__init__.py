"""Mobility models: pure ``init``/``step`` functions moving users inside an area (metres)."""

from dtwin_jax.mobility.base import MobilityModel
from dtwin_jax.mobility.streets import UNREACHABLE, StreetGraph, street_graph_grid

__all__ = ["UNREACHABLE", "MobilityModel", "StreetGraph", "street_graph_grid"]

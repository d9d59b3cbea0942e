"""Deployment and users of ``association-v0``: BS positions, the mobility model and its
default params, the initial active users and churn (arrivals and departures)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks, mobility
from dtwin_jax.mobility import (
    GaussMarkov,
    MobilityModel,
    Playback,
    RandomWaypoint,
    StreetGraph,
    StreetVehicles,
    street_graph_grid,
)
from dtwin_jax.mobility.base import f32

#: the mobility names the env accepts (a ``MobilityModel`` instance is accepted too)
MOBILITY_CHOICES = ("street", "waypoint", "gauss_markov", "playback")


def default_deployment(
    num_bs: int, num_macro: int, area_min, area_max, graph: StreetGraph | None = None, seed=0
) -> np.ndarray:
    """BS positions ``[num_bs, 2]`` (m): macros on a centred grid, small cells at street nodes.

    Macros sit at the centres of the cells of a near-square ``num_macro`` grid over the area.
    Small cells sit at distinct nodes of ``graph`` (uniform among them, NumPy ``seed``), or at
    uniform points of the area without a graph. Runs in NumPy on concrete inputs.
    """
    num_bs = _checks.check_int("num_bs", num_bs, lo=1)
    num_macro = _checks.check_int("num_macro", num_macro, lo=0, hi=num_bs)
    lo = np.asarray(area_min, np.float64)
    hi = np.asarray(area_max, np.float64)
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(num_macro))) if num_macro else 1
    rows = int(np.ceil(num_macro / cols)) if num_macro else 1
    macro = [
        lo + (hi - lo) * np.array([(i % cols + 0.5) / cols, (i // cols + 0.5) / rows])
        for i in range(num_macro)
    ]
    num_small = num_bs - num_macro
    if graph is not None:
        nodes = np.asarray(graph.nodes)[np.asarray(graph.node_mask)]
        pick = rng.choice(len(nodes), size=num_small, replace=num_small > len(nodes))
        small = list(nodes[pick])
    else:
        small = list(lo + (hi - lo) * rng.uniform(size=(num_small, 2)))
    return np.asarray(macro + small, np.float32).reshape(num_bs, 2)


def build_mobility(
    choice: str | MobilityModel,
    max_users: int,
    area_m: float,
    graph: StreetGraph | None,
    playback_samples: int,
) -> tuple[MobilityModel, StreetGraph | None]:
    """The env's mobility model and its street graph (``choice`` a name of
    :data:`MOBILITY_CHOICES` or a model with ``num_users == max_users``).

    ``"street"`` drives on ``graph`` (default: an 11 x 11 grid spanning the area)."""
    if isinstance(choice, MobilityModel):
        if choice.num_users != max_users:
            raise ValueError(
                f"mobility.num_users={choice.num_users} must equal max_users={max_users}"
            )
        return choice, graph
    name = _checks.check_choice("mobility", choice, MOBILITY_CHOICES)
    if name == "street":
        graph = street_graph_grid(11, 11, area_m / 10.0) if graph is None else graph
        return mobility.make(name, max_users, max_hops=8, graph=graph), graph
    if name == "playback":
        steps = _checks.check_int("playback_samples", playback_samples, lo=2)
        return mobility.make(name, max_users, num_samples=steps, loop=True), graph
    return mobility.make(name, max_users), graph


def default_mobility_params(model: MobilityModel, area_m: float):
    """The env's default params of its mobility model on the ``area_m`` square (built
    without validation, so it runs under jit; valid by construction)."""
    area = {"area_min": f32([0.0, 0.0]), "area_max": f32([area_m, area_m])}
    p = model.default_params
    if isinstance(model, StreetVehicles):
        return p.replace(speed_min=f32(5.0), speed_max=f32(15.0))
    if isinstance(model, RandomWaypoint):
        return p.replace(speed_min=f32(1.0), speed_max=f32(15.0), pause_max=f32(5.0), **area)
    if isinstance(model, GaussMarkov):
        return p.replace(mean_speed=f32(10.0), speed_std=f32(3.0), **area)
    if isinstance(model, Playback):
        return p.replace(traj=jnp.full(p.traj.shape, area_m / 2, jnp.float32), **area)
    return p


def target_users(t: jax.Array, phase: jax.Array, params, max_users: int) -> jax.Array:
    """``n*(t) = num_users (1 + density_amp sin(2 pi (t / density_period + phase)))`` (float,
    users), clipped to ``[0, max_users]``; ``t`` in steps, ``phase`` in cycles."""
    angle = 2.0 * jnp.pi * (t / params.density_period + phase)
    n = params.num_users.astype(jnp.float32) * (1.0 + params.density_amp * jnp.sin(angle))
    return jnp.clip(n, 0.0, float(max_users))


def initial_active(target: jax.Array, max_users: int) -> jax.Array:
    """``[U]`` bool: the first ``round(target)`` slots are active at reset."""
    return jnp.arange(max_users) < jnp.round(target)


def presence_probs(n: jax.Array, target: jax.Array, churn_p: jax.Array, max_users: int):
    """Per-user departure and per-free-slot arrival probabilities that take ``n`` active users
    to ``target`` in expectation: ``p_leave = max(churn, 1 - target / n)`` and
    ``p_arrive = (target - n (1 - p_leave)) / (U - n)``, both clipped to [0, 1] (the mean is
    exact unless a clip binds). Scalars in, scalars out."""
    n = n.astype(jnp.float32)
    need = jnp.where(n > 0, 1.0 - target / jnp.maximum(n, 1.0), 0.0)
    p_leave = jnp.clip(jnp.maximum(churn_p, need), 0.0, 1.0)
    free = jnp.maximum(max_users - n, 1.0)
    p_arrive = jnp.clip((target - n * (1.0 - p_leave)) / free, 0.0, 1.0)
    return p_leave, p_arrive


def churn(u: jax.Array, active: jax.Array, target: jax.Array, params, max_users: int):
    """Departures and arrivals towards ``target`` users (see :func:`presence_probs`).

    ``u [U]``: uniforms in [0, 1), one per user slot. Returns the next ``active [U]``; with
    ``density_amp = 0`` and ``churn = 0`` nobody moves in or out."""
    p_leave, p_arrive = presence_probs(active.sum(), target, params.churn, max_users)
    return jnp.where(active, u >= p_leave, u < p_arrive)

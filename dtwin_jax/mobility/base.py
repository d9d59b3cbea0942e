"""Common API of the mobility models.

A model is a Python object holding STATIC sizes and options (``num_users``, loop flags,
hop limits), validated in its constructor. Everything continuous lives in a ``Params``
``flax.struct.dataclass`` whose leaves are arrays, so ``jax.vmap`` over a stack of params
runs a batch of different twins::

    model = RandomWaypoint(num_users=64)
    model.default_params                         # property, unvalidated (works under jit)
    params = model.make_params(speed_max=20.0)   # validated before anything is traced
    state = model.init(key, params)              # State.pos: [U, 2] float32 metres
    state = model.step(key, state, params)       # pure, jittable, vmappable
    final, states = model.rollout(key, state, params, 100)   # states.pos: [100, U, 2]

Every ``Params`` has ``area_min [2]`` and ``area_max [2]`` (metres, as fields or
properties), and every ``State`` has ``pos [U, 2]``, always inside that area.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp

from dtwin_jax import _checks
from dtwin_jax._params import CONCRETE, ParamsMixin, Rules


class MobilityModel(ParamsMixin):
    """Base class: static sizes in the constructor, pure ``init``/``step`` on arrays.

    ``default_params`` (a property), ``make_params(**overrides)`` and
    ``check_params(params, rules)`` come from :class:`dtwin_jax._params.ParamsMixin`.
    """

    num_users: int

    @abc.abstractmethod
    def init(self, key: jax.Array, params):
        """Initial ``State`` (pure, jittable)."""

    def reinit(self, key: jax.Array, state, params):
        """State of a new episode after one that ended in ``state``; defaults to :meth:`init`
        (models that carry something over episodes, such as a trajectory bank, override it)."""
        return self.init(key, params)

    @abc.abstractmethod
    def step(self, key: jax.Array, state, params):
        """Next ``State`` after one step (pure, jittable)."""

    def rollout(self, key: jax.Array, state, params, num_steps: int):
        """Run ``num_steps`` steps with ``lax.scan``.

        Returns ``(final_state, states)``: ``states`` stacks the state after each step on a
        leading time axis (``states.pos [num_steps, U, 2]``, metres; fields left unused
        are dropped by jit). ``num_steps`` is a static Python int.
        """
        num_steps = _checks.check_int("num_steps", num_steps, lo=1)

        def body(s, k):
            s = self.step(k, s, params)
            return s, s

        return jax.lax.scan(body, state, jax.random.split(key, num_steps))


def check_area(area_min, area_max, rules: Rules = CONCRETE) -> None:
    """Check that ``area_min [2] < area_max [2]`` (metres), both finite."""
    rules.array("area_min", area_min, shape=(2,))
    rules.array("area_max", area_max, shape=(2,))
    rules.require(
        rules.xp.all(area_max > area_min),
        "area_max={} must exceed area_min={} in both coordinates", area_max, area_min,
    )


def check_range(name_lo: str, lo, name_hi: str, hi, low: float = 0.0,
                rules: Rules = CONCRETE) -> None:
    """Check ``low <= lo <= hi`` for a pair of 0-d range fields (e.g. speed_min, speed_max)."""
    rules.array(name_lo, lo, shape=(), lo=low)
    rules.array(name_hi, hi, shape=(), lo=low)
    rules.require(hi >= lo, f"{name_hi}={{}} must be >= {name_lo}={{}}", hi, lo)


def uniform_in_area(key: jax.Array, num: int, area_min: jax.Array, area_max: jax.Array):
    """``num`` points uniform in the rectangle ``[area_min, area_max]``: ``[num, 2]`` float32."""
    u = jax.random.uniform(key, (num, 2), dtype=jnp.float32)
    return area_min + u * (area_max - area_min)


def clip_to_area(pos: jax.Array, area_min: jax.Array, area_max: jax.Array) -> jax.Array:
    """Clip positions ``[..., 2]`` into the rectangle (metres)."""
    return jnp.clip(pos, area_min, area_max)


def f32(value) -> jax.Array:
    """A float32 array (default parameter values)."""
    return jnp.asarray(value, dtype=jnp.float32)

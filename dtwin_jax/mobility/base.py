"""Common API of the mobility models.

A model is a Python object holding STATIC sizes and options (``num_users``, loop flags,
hop limits), validated in its constructor. Everything continuous lives in a ``Params``
``flax.struct.dataclass`` whose leaves are arrays, so ``jax.vmap`` over a stack of params
runs a batch of different twins::

    model = RandomWaypoint(num_users=64)
    params = model.make_params(speed_max=20.0)   # validated before anything is traced
    state = model.init(key, params)              # State.pos: [U, 2] float32 metres
    state = model.step(key, state, params)       # pure, jittable, vmappable
    final, states = model.rollout(key, state, params, 100)   # states.pos: [100, U, 2]

Every ``Params`` has ``area_min [2]`` and ``area_max [2]`` (metres, as fields or
properties), and every ``State`` has ``pos [U, 2]``, always inside that area.
"""

from __future__ import annotations

import abc
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax import _checks


class MobilityModel(abc.ABC):
    """Base class: static sizes in the constructor, pure ``init``/``step`` on arrays."""

    num_users: int

    @abc.abstractmethod
    def default_params(self):
        """Default ``Params`` of this model (concrete arrays, float32/int32)."""

    @abc.abstractmethod
    def check_params(self, params) -> None:
        """Raise ValueError naming the field if concrete ``params`` are invalid."""

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

    def make_params(self, **overrides):
        """Default params with ``overrides`` applied and validated (call outside jit).

        Array fields accept anything broadcastable to the default shape (e.g. a scalar
        speed for all users); values are cast to the default dtype. Non-array fields
        (a ``StreetGraph``) are passed through. Unknown names raise ValueError.
        """
        params = self.default_params()
        names = {f.name for f in dataclasses.fields(params)}
        updates = {}
        for name, value in overrides.items():
            if name not in names:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; allowed: {sorted(names)}"
                )
            default = getattr(params, name)
            if isinstance(default, jax.Array):
                updates[name] = _checks.cast_like(name, value, default)
            else:
                updates[name] = value
        params = params.replace(**updates)
        self.check_params(params)
        return params

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


def check_area(area_min, area_max) -> None:
    """Check that ``area_min [2] < area_max [2]`` (metres), both finite."""
    lo = _checks.check_array("area_min", area_min, shape=(2,))
    hi = _checks.check_array("area_max", area_max, shape=(2,))
    if np.any(hi <= lo):
        raise ValueError(
            f"area_max={hi.tolist()} must exceed area_min={lo.tolist()} in both coordinates"
        )


def check_scalar(
    name: str, value, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> float:
    """Check a 0-d parameter array: finite, in ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``)."""
    arr = _checks.check_array(name, value, shape=())
    return _checks.check_float(name, float(arr), lo=lo, hi=hi, lo_open=lo_open)


def check_range(name_lo: str, lo, name_hi: str, hi, low: float = 0.0) -> None:
    """Check ``low <= lo <= hi`` for a pair of 0-d range fields (e.g. speed_min, speed_max)."""
    lo_val = check_scalar(name_lo, lo, lo=low)
    hi_val = check_scalar(name_hi, hi, lo=low)
    if hi_val < lo_val:
        raise ValueError(f"{name_hi}={hi_val} must be >= {name_lo}={lo_val}")


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

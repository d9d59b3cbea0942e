"""The params API shared by environments and mobility models (one mixin, one set of rules).

A component (an environment or a mobility model) keeps its static sizes on the Python object
and everything continuous in a ``flax.struct`` params dataclass. :class:`ParamsMixin` gives
it:

- ``default_params`` (abstract property): the defaults, built WITHOUT validation, so that it
  also works inside ``jax.jit`` (``jax.jit(env.reset)(key)``). Defaults are valid by
  construction; every component's tests check ``check_params(default_params)``.
- ``make_params(**overrides)``: the defaults with ``overrides`` cast to the default dtypes
  (:func:`dtwin_jax._checks.cast_like`: integer fields reject non-integers, NaN is refused)
  and validated; call it outside jit. Unknown names are rejected naming the allowed ones. A
  field backed by a sub-component (:meth:`ParamsMixin.param_components`, e.g. an env's
  ``mobility``) takes a dict of overrides of that component's fields.
- ``check_params(params, rules=CONCRETE)`` (abstract): the rules on the fields, written once
  against :class:`Rules`. ``CONCRETE`` raises ``ValueError``/``TypeError`` at once, naming the
  field, its value and the allowed range; ``TRACED`` records ``jax.experimental.checkify``
  checks that raise at run time, under ``jit`` (the checked mode of
  :class:`dtwin_jax.envs.wrappers.CheckedEnv`). Shapes and dtypes are static, so they are
  checked at trace time in both modes.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from dtwin_jax import _checks

__all__ = ["CONCRETE", "TRACED", "ParamsMixin", "Rules"]


class Rules:
    """Checks of params fields, evaluated now (``traced=False``) or under checkify.

    ``xp`` is the array module of the mode (``numpy`` or ``jax.numpy``): use it for the
    predicates passed to :meth:`require`.
    """

    def __init__(self, traced: bool):
        self.traced = traced
        self.xp = jnp if traced else np

    def array(
        self,
        name: str,
        value,
        shape: tuple[int | None, ...] | None = None,
        lo: float | None = None,
        hi: float | None = None,
        *,
        lo_open: bool = False,
        hi_open: bool = False,
        integer: bool = False,
    ) -> None:
        """Check a numeric field: ``shape`` (None = any size on that axis), finite entries in
        ``[lo, hi]`` (open ends with ``lo_open``/``hi_open``), integer dtype if ``integer``."""
        dtype = np.dtype(jnp.result_type(value))
        if dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {dtype}")
        if integer and dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got dtype {dtype} (value {value})")
        got = tuple(np.shape(value))
        if shape is not None and (
            len(got) != len(shape)
            or any(s is not None and s != g for s, g in zip(shape, got, strict=False))
        ):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} has shape {got}; expected {want}")
        allowed = _checks._range(lo, hi, lo_open, hi_open)
        if not self.traced:
            if integer:
                _checks.check_array(name, value)  # integers are finite; this is the type gate
                arr = np.asarray(value)
                for v in (arr.min(), arr.max()) if arr.size else ():
                    _checks.check_int(name, v.item(), lo, hi)
            elif got == ():
                _checks.check_float(name, float(np.asarray(value)), lo, hi,
                                    lo_open=lo_open, hi_open=hi_open)
            else:
                _checks.check_array(name, value, lo=lo, hi=hi)
                arr = np.asarray(value, np.float64)
                if arr.size and ((lo_open and arr.min() <= lo) or (hi_open and arr.max() >= hi)):
                    raise ValueError(f"{name} has an entry outside {allowed}")
            return
        x = jnp.asarray(value)
        ok = jnp.isfinite(x) if dtype.kind == "f" else jnp.ones(x.shape, bool)
        if lo is not None:
            ok &= x > lo if lo_open else x >= lo
        if hi is not None:
            ok &= x < hi if hi_open else x <= hi
        first_bad = x.ravel()[jnp.argmin(ok.ravel())] if x.size else x
        checkify.check(
            jnp.all(ok), f"{name} has entry {{}}; allowed finite values in {allowed}", first_bad
        )

    def require(self, ok, message: str, *args) -> None:
        """Raise ``ValueError(message.format(*args))`` (checkify error when traced) unless
        every entry of ``ok`` is True."""
        if self.traced:
            checkify.check(jnp.all(ok), message, *args)
        elif not bool(np.all(np.asarray(ok))):
            raise ValueError(message.format(*(np.asarray(a) for a in args)))


CONCRETE = Rules(traced=False)
TRACED = Rules(traced=True)


class ParamsMixin(abc.ABC):
    """``default_params`` / ``make_params`` / ``check_params`` of an env or a mobility model."""

    @property
    @abc.abstractmethod
    def default_params(self) -> Any:
        """Default params (a ``flax.struct`` dataclass), built without validation."""

    @abc.abstractmethod
    def check_params(self, params, rules: Rules = CONCRETE) -> None:
        """Apply every rule on ``params``' fields through ``rules`` (see :class:`Rules`)."""

    def param_components(self) -> dict[str, ParamsMixin]:
        """Fields whose value is the params of a sub-component (name -> component); a dict
        passed for such a field in :meth:`make_params` overrides that component's fields."""
        return {}

    def make_params(self, **overrides) -> Any:
        """:attr:`default_params` with ``overrides`` applied and validated (call outside jit).

        Array fields take anything broadcastable to the default's shape (e.g. one speed for
        all users), cast to the default's dtype; other fields (a ``StreetGraph``, network
        weights, a sub-component's params struct) are taken as given.
        """
        return self.replace_params(self.default_params, **overrides)

    def replace_params(self, params, **overrides) -> Any:
        """``params`` with ``overrides`` applied as in :meth:`make_params`, then validated."""
        names = sorted(f.name for f in dataclasses.fields(params))
        components = self.param_components()
        updates = {}
        for name, value in overrides.items():
            if name not in names:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; allowed: {names}"
                )
            current = getattr(params, name)
            if isinstance(value, dict) and name in components:
                updates[name] = components[name].replace_params(current, **value)
            elif isinstance(current, (jax.Array, np.ndarray)):
                updates[name] = _checks.cast_like(name, value, current)
            else:
                updates[name] = value
        params = params.replace(**updates)
        self.check_params(params)
        return params

"""Observation and action spaces: static descriptions with jittable ``sample`` and ``contains``.

Four kinds, each with one action shape per agent and one mask convention:

=================  ==================  ======================  ===============================
space              action (one agent)  mask (one agent)        meaning of the mask
=================  ==================  ======================  ===============================
``Discrete(n)``    ``[]`` int32        ``[n]`` bool            legal values
``MultiDiscrete``  ``[F]`` int32       ``[F, n_max]`` bool     legal values of each factor;
                                                               ``n_max = max(nvec)``, entries
                                                               ``j >= nvec[f]`` always False
``Box``            ``shape`` float32   none                    --
``Simplex(n)``     ``[n]`` float32     none                    --
=================  ==================  ======================  ===============================

Multi-agent envs stack agents on axis 0 (``action [A, ...]``, ``action_mask [A, ...]``); a
continuous space has no mask (``AgentObs.action_mask`` is ``None``). ``mask_shape`` gives the
per-agent mask shape (``None`` for continuous spaces).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax._checks import check_int


def _masked_draw(key: jax.Array, mask: jax.Array) -> jax.Array:
    """Uniform index among the True entries of ``mask [..., n]`` (uniform over all if none)."""
    any_legal = mask.any(-1, keepdims=True)
    logits = jnp.where(mask | ~any_legal, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits)


@dataclass(frozen=True)
class Discrete:
    """Integers ``0 .. n-1`` of shape ``shape`` (``()`` for one value)."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: type = jnp.int32

    def __post_init__(self):
        check_int("Discrete.n", self.n, lo=1)

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """Shape of a legal-action mask: ``(*shape, n)`` (bool, one entry per value)."""
        return (*self.shape, self.n)

    def sample(self, key: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Uniform sample; with ``mask[..., n]`` (bool) only legal values are drawn."""
        if mask is None:
            return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)
        return _masked_draw(key, mask).astype(self.dtype)

    def contains(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Whether ``x`` is a value of the space (and legal under ``mask`` if given)."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        ok = jnp.all((x >= 0) & (x < self.n) & (x == jnp.round(x)))
        if mask is not None:
            idx = jnp.clip(x, 0, self.n - 1).astype(jnp.int32)
            ok &= jnp.all(jnp.take_along_axis(mask, idx[..., None], axis=-1))
        return ok


@dataclass(frozen=True)
class MultiDiscrete:
    """Integer vectors ``[F]`` with entry ``f`` in ``0 .. nvec[f]-1`` (factored choices).

    The mask of one agent is ``[F, n_max]`` bool (see the module table).
    """

    nvec: tuple[int, ...]
    dtype: type = jnp.int32

    def __post_init__(self):
        object.__setattr__(self, "nvec", tuple(self.nvec))
        if not self.nvec:
            raise ValueError("MultiDiscrete.nvec must hold at least one factor")
        for i, n in enumerate(self.nvec):
            check_int(f"MultiDiscrete.nvec[{i}]", n, lo=1)

    @property
    def shape(self) -> tuple[int, ...]:
        """Action shape ``(F,)``: one int per factor."""
        return (len(self.nvec),)

    @property
    def n_max(self) -> int:
        """Largest factor size ``max(nvec)``: the width of the mask's last axis."""
        return max(self.nvec)

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """Shape of a legal-action mask: ``(F, n_max)`` bool."""
        return (len(self.nvec), self.n_max)

    def valid_values(self) -> np.ndarray:
        """``[F, n_max]`` bool: which values exist in each factor (the all-legal mask)."""
        return np.arange(self.n_max)[None, :] < np.asarray(self.nvec)[:, None]

    def sample(self, key: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Uniform sample per factor; with ``mask [F, n_max]`` only legal values are drawn."""
        valid = jnp.asarray(self.valid_values())
        mask = valid if mask is None else mask & valid
        return _masked_draw(key, mask).astype(self.dtype)

    def contains(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Whether ``x [F]`` is a value of the space (and legal under ``mask`` if given)."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        ok = jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)) & (x == jnp.round(x)))
        if mask is not None:
            idx = jnp.clip(x, 0, self.n_max - 1).astype(jnp.int32)
            ok &= jnp.all(jnp.take_along_axis(mask, idx[:, None], axis=-1))
        return ok


@dataclass(frozen=True)
class Box:
    """Real arrays of ``shape`` with elementwise bounds ``low <= x <= high`` (may be infinite)."""

    low: float | np.ndarray
    high: float | np.ndarray
    shape: tuple[int, ...]
    dtype: type = jnp.float32

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(self.shape))
        if np.any(np.isnan(np.asarray(self.low, float))) or np.any(
            np.isnan(np.asarray(self.high, float))
        ):
            raise ValueError("Box.low and Box.high must not contain NaN")
        if np.any(np.asarray(self.low) > np.asarray(self.high)):
            raise ValueError(f"Box.low must be <= Box.high; got low={self.low}, high={self.high}")

    mask_shape = None

    def sample(self, key: jax.Array, mask: None = None) -> jax.Array:
        """Uniform within finite bounds; standard normal clipped to the bounds where unbounded."""
        del mask
        low = jnp.broadcast_to(jnp.asarray(self.low, self.dtype), self.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, self.dtype), self.shape)
        k1, k2 = jax.random.split(key)
        finite = jnp.isfinite(low) & jnp.isfinite(high)
        uni = jax.random.uniform(k1, self.shape, self.dtype, jnp.where(finite, low, 0.0),
                                 jnp.where(finite, high, 1.0))
        normal = jnp.clip(jax.random.normal(k2, self.shape, self.dtype), low, high)
        return jnp.where(finite, uni, normal)

    def contains(self, x: jax.Array, mask: None = None) -> jax.Array:
        """Scalar bool: ``x`` has ``shape``, is finite and within ``[low, high]`` (no mask)."""
        del mask
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high) & jnp.isfinite(x))


@dataclass(frozen=True)
class Simplex:
    """Shares: vectors ``[n]`` with entries ``>= 0`` summing to 1 (e.g. compute or bandwidth
    shares). ``contains`` accepts a sum within ``atol`` of 1."""

    n: int
    atol: float = 1e-4
    dtype: type = jnp.float32

    def __post_init__(self):
        check_int("Simplex.n", self.n, lo=1)

    @property
    def shape(self) -> tuple[int, ...]:
        """Action shape ``(n,)``: one share per entry."""
        return (self.n,)

    mask_shape = None

    def sample(self, key: jax.Array, mask: None = None) -> jax.Array:
        """Uniform on the simplex (Dirichlet(1, ..., 1))."""
        del mask
        e = jax.random.exponential(key, self.shape, self.dtype)
        return e / jnp.sum(e)

    def contains(self, x: jax.Array, mask: None = None) -> jax.Array:
        """Scalar bool: ``x [n]`` is finite, ``>= 0`` and sums to 1 within ``atol`` (no mask)."""
        del mask
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        finite = jnp.all(jnp.isfinite(x))
        return finite & jnp.all(x >= 0.0) & (jnp.abs(jnp.sum(x) - 1.0) <= self.atol)


Space = Discrete | MultiDiscrete | Box | Simplex

#: spaces with a per-agent action mask
MASKED_SPACES = (Discrete, MultiDiscrete)

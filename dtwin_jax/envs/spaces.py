"""Observation and action spaces: static descriptions with jittable ``sample`` and ``contains``."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax._checks import check_int


@dataclass(frozen=True)
class Discrete:
    """Integers ``0 .. n-1`` of shape ``shape`` (``()`` for one value)."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: type = jnp.int32

    def __post_init__(self):
        check_int("Discrete.n", self.n, lo=1)

    def sample(self, key: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Uniform sample; with ``mask[..., n]`` (bool) only legal values are drawn."""
        if mask is None:
            return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)
        logits = jnp.where(mask, 0.0, -jnp.inf)
        any_legal = mask.any(-1)
        draw = jax.random.categorical(key, jnp.where(any_legal[..., None], logits, 0.0))
        return draw.astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < self.n) & (x == jnp.round(x)))


@dataclass(frozen=True)
class MultiDiscrete:
    """Integer vectors with entry ``i`` in ``0 .. nvec[i]-1``."""

    nvec: tuple[int, ...]
    dtype: type = jnp.int32

    def __post_init__(self):
        for i, n in enumerate(self.nvec):
            check_int(f"MultiDiscrete.nvec[{i}]", n, lo=1)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)

    def sample(self, key: jax.Array) -> jax.Array:
        u = jax.random.uniform(key, self.shape)
        return jnp.floor(u * jnp.asarray(self.nvec)).astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)))


@dataclass(frozen=True)
class Box:
    """Real arrays of ``shape`` with elementwise bounds ``low <= x <= high`` (may be infinite)."""

    low: float | np.ndarray
    high: float | np.ndarray
    shape: tuple[int, ...]
    dtype: type = jnp.float32

    def __post_init__(self):
        if np.any(np.asarray(self.low) > np.asarray(self.high)):
            raise ValueError(f"Box.low must be <= Box.high; got low={self.low}, high={self.high}")

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform within finite bounds; standard normal clipped to the bounds where unbounded."""
        low = jnp.broadcast_to(jnp.asarray(self.low, self.dtype), self.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, self.dtype), self.shape)
        k1, k2 = jax.random.split(key)
        finite = jnp.isfinite(low) & jnp.isfinite(high)
        uni = jax.random.uniform(k1, self.shape, self.dtype, jnp.where(finite, low, 0.0),
                                 jnp.where(finite, high, 1.0))
        normal = jnp.clip(jax.random.normal(k2, self.shape, self.dtype), low, high)
        return jnp.where(finite, uni, normal)

    def contains(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.all((x >= self.low) & (x <= self.high) & jnp.isfinite(x))

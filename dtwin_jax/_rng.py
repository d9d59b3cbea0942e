"""Random-number generation settings shared by the environments.

JAX >= 0.5 defaults to the "partitionable" threefry, whose random bits lower to much larger
XLA programs: on CPU a ``jax.random.normal`` under ``vmap`` with a batch of keys compiles
about 7x slower (0.8 s vs 5.9 s measured on the 2-core CI machine), and an env step makes a
dozen such draws. :func:`classic_threefry` traces a function with the classic
(non-partitionable) threefry instead. Streams are per key either way, so a batch of twins
with one key each shards over devices the same; only the numbers drawn differ from the
partitionable stream.
"""

from __future__ import annotations

import functools

import jax


def classic_threefry(fn):
    """Decorator: trace ``fn`` with ``jax.threefry_partitionable(False)``."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.threefry_partitionable(False):
            return fn(*args, **kwargs)

    return wrapped

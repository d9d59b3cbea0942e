"""A tqdm progress bar advanced from inside jitted (and vmapped) code via ``jax.debug.callback``."""

from __future__ import annotations

import jax
import numpy as np
from tqdm.auto import tqdm

from dtwin_jax._checks import check_int


class ProgressBar:
    """Host-side bar over ``total`` iterations; call :meth:`update` from traced code.

    ``update(i, **scalars)`` moves the bar to ``i + 1`` and shows the scalars (averaged if they
    carry a batch axis). The bar opens at ``i == 0`` and closes at ``i == total - 1``, so a
    jitted function that calls it can run many times. Under ``vmap`` the callback may run once
    per batch element with the same ``i``; the bar never moves backwards, so that is harmless.
    """

    def __init__(self, total: int, desc: str = "updates"):
        self.total = check_int("total", total, lo=1)
        self.desc = desc
        self._bar = None

    def update(self, i: jax.Array, **scalars: jax.Array) -> None:
        """Report iteration ``i`` (an int32 scalar, 0-based) from inside jit."""
        jax.debug.callback(self._host_update, i, scalars)

    def _host_update(self, i, scalars) -> None:
        i = int(i)
        if self._bar is None:
            if i != 0:
                return
            self._bar = tqdm(total=self.total, desc=self.desc, leave=True)
        if i + 1 > self._bar.n:
            self._bar.update(i + 1 - self._bar.n)
            self._bar.set_postfix({k: f"{float(np.mean(v)):.4g}" for k, v in scalars.items()})
        if self._bar.n >= self.total:
            self._bar.close()
            self._bar = None

"""Class mix of the twin-generated training data of ``edge-retrain-v0``.

Given the real samples' class counts ``n [C]`` (total ``N``), the current class distribution
``p [C]`` and the number ``G`` of samples to generate, :func:`kl_mix` picks integer counts
``g [C] >= 0``, ``sum g = G``, minimising ``KL(p || (n + g) / (N + G))``. As ``N + G`` is
fixed this is ``max sum_c p_c log(n_c + g_c)``: a separable concave objective over integer
points of a simplex, for which greedy by marginal gain is exactly optimal (the gains
``p_c log((m + 1) / m)`` decrease in ``m``).

Fixed-shape algorithm (jittable, vmappable; ``G`` static or traced):

1. continuous optimum by water-filling: ``g_c = max(0, p_c T - n_c)`` where the level ``T``
   solves ``sum_c max(0, p_c T - n_c) = G``; found exactly after sorting the breakpoints
   ``n_c / p_c`` (O(C log C));
2. start from ``floor(g_c - 1e-3)`` (clipped at 0; sum <= G);
3. one ``lax.while_loop``: while ``sum g < G``, add a unit to the class of largest marginal
   gain ``p_c log((m_c + 1) / m_c)`` (``m = n + g``); then, while the largest gain exceeds
   the smallest loss of removing a unit ``p_c log(m_c / (m_c - 1))``, move a unit from the
   latter class to the former. For a separable concave objective on the integer simplex, no
   improving single-unit exchange means a global optimum, so the result is exact whatever
   the start; the water-filling start only makes the loop short (at most ~C steps in
   practice; the proximity bound to the continuous optimum does not hold for classes with
   ``n_c = 0``, whose ``log 0`` forces a first unit, hence the exchanges). The loop is capped
   at ``G + 2C + 8`` iterations as a guard against float ties.

Total O(C log C + C * iterations). Conventions: classes with ``p_c = 0`` are never generated
(unless every class has ``p_c = 0``: then nothing is preferred and class 0 takes
everything). Classes with ``p_c > 0`` and ``n_c = 0`` make the KL infinite until they get a
sample: their first sample's gain is ``EMPTY_GAIN * p_c`` (1e30 p_c, above any finite gain),
so they are filled first, and if ``G`` is smaller than their number the ``G`` of largest
``p_c`` are filled (the KL stays infinite; this minimises the target mass left uncovered,
then the finite part). Ties go to the lowest class index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import rel_entr

#: marginal gain of the first sample of a class with no real sample (times p_c): stands for
#: the infinite gain of leaving ``log 0``, finite so that such classes still compete by p_c
EMPTY_GAIN = 1e30

#: margin subtracted from the continuous solution before rounding down (see module docs)
FLOOR_MARGIN = 1e-3


def kl_divergence(p: jax.Array, q: jax.Array) -> jax.Array:
    """``[]`` ``KL(p || q) = sum_c p_c log(p_c / q_c)`` over the last axis, with
    ``0 log 0 = 0`` (terms with ``p_c = 0`` vanish) and ``+inf`` if ``q_c = 0 < p_c``.
    Inputs are used as given (not normalised); leading axes broadcast."""
    p = jnp.asarray(p, jnp.float32)
    q = jnp.asarray(q, jnp.float32)
    return rel_entr(p, q).sum(axis=-1)


def mix_kl(real_counts: jax.Array, target: jax.Array, gen_counts: jax.Array) -> jax.Array:
    """``[]`` ``KL(target || (real + gen) / sum(real + gen))`` (``target`` normalised)."""
    m = jnp.asarray(real_counts, jnp.float32) + jnp.asarray(gen_counts, jnp.float32)
    p = jnp.asarray(target, jnp.float32)
    return kl_divergence(p / p.sum(), m / jnp.maximum(m.sum(), 1e-30))


def water_fill(real_counts: jax.Array, target: jax.Array, n_generated) -> jax.Array:
    """``[C]`` f32 continuous minimiser ``g_c = max(0, p_c T - n_c)``, ``sum g = G``
    (``target`` normalised here; classes with ``p_c = 0`` get 0)."""
    n = jnp.asarray(real_counts, jnp.float32)
    p = jnp.asarray(target, jnp.float32)
    p = p / jnp.maximum(p.sum(), 1e-30)
    big = jnp.float32(jnp.inf)
    pos = p > 0
    t = jnp.where(pos, n / jnp.where(pos, p, 1.0), big)       # breakpoints n_c / p_c
    order = jnp.argsort(t)
    t_s, p_s, n_s = t[order], p[order], n[order]
    cum_p = jnp.cumsum(p_s)
    cum_n = jnp.cumsum(n_s)
    # fill level reached at the k-th breakpoint: sum_{j<k} (p_j t_k - n_j) = f(t_k)
    fill = jnp.where(jnp.isfinite(t_s), t_s * cum_p - cum_n, big)
    g_total = jnp.asarray(n_generated, jnp.float32)
    active = jnp.sum(fill < g_total)                          # classes with g_c > 0
    k = jnp.maximum(active, 1) - 1
    level = (g_total + cum_n[k]) / jnp.maximum(cum_p[k], 1e-30)
    g = jnp.where(pos, jnp.maximum(p * level - n, 0.0), 0.0)
    return jnp.where(active > 0, g, 0.0)


def kl_mix(real_counts: jax.Array, target: jax.Array, n_generated) -> jax.Array:
    """``[C]`` int32 class counts of ``n_generated`` samples to generate, minimising
    ``KL(target || (real_counts + g) / (N_real + n_generated))`` exactly over integers.

    ``real_counts [C]`` int or float >= 0; ``target [C]`` >= 0 (normalised here);
    ``n_generated`` a non-negative int (Python or traced). ``sum(result) = n_generated``.
    See the module docstring for the algorithm, its complexity and conventions.
    """
    n = jnp.asarray(real_counts, jnp.float32)
    p = jnp.asarray(target, jnp.float32)
    p = p / jnp.maximum(p.sum(), 1e-30)
    total = jnp.asarray(n_generated, jnp.int32)
    g_cont = water_fill(n, p, n_generated)
    g_cont = jnp.where(jnp.isfinite(g_cont), g_cont, 0.0)
    g0 = jnp.maximum(jnp.floor(g_cont - FLOOR_MARGIN), 0.0).astype(jnp.int32)
    g0 = jnp.where(g0.sum() <= total, g0, 0)                  # never overshoot (safety)

    max_iter = total + 2 * p.shape[0] + 8                     # never reached in practice

    def add_gain(g):
        m = n + g.astype(jnp.float32)
        # p log((m + 1) / m); EMPTY_GAIN p for an empty class; -inf: never pick p = 0
        gain = jnp.where(m > 0, p * jnp.log1p(1.0 / jnp.where(m > 0, m, 1.0)), EMPTY_GAIN * p)
        return jnp.where(p > 0, gain, -jnp.inf)

    def remove_loss(g):
        m1 = n + g.astype(jnp.float32) - 1.0                  # count left after removal
        # p log(m / (m - 1)); EMPTY_GAIN p if it empties a class; 0 when p = 0
        loss = jnp.where(m1 > 0, p * jnp.log1p(1.0 / jnp.where(m1 > 0, m1, 1.0)),
                         EMPTY_GAIN * p)
        return jnp.where(g > 0, loss, jnp.inf)                # cannot remove what is not there

    def cond(carry):
        g, it = carry
        improving = jnp.max(add_gain(g)) > jnp.min(remove_loss(g))
        return ((g.sum() < total) | improving) & (it < max_iter)

    def body(carry):
        g, it = carry
        up = jnp.argmax(add_gain(g))
        down = jnp.argmin(remove_loss(g))
        g = g.at[up].add(1)
        g = jnp.where(g.sum() > total, g.at[down].add(-1), g)  # exchange once sum is full
        return g, it + 1

    g, _ = jax.lax.while_loop(cond, body, (g0, jnp.int32(0)))
    return g

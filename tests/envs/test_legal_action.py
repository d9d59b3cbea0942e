"""The one rule for illegal actions (dtwin_jax.envs.base.legal_action), per space kind."""

import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs import Box, Discrete, MultiDiscrete, Simplex, legal_action


def test_discrete_out_of_range_or_masked_becomes_first_legal():
    space = Discrete(4)
    mask = jnp.array([[False, True, True, False]] * 4 + [[False] * 4])
    action = jnp.array([2, 3, -1, 9, 2])
    got = np.asarray(legal_action(space, action, mask))
    np.testing.assert_array_equal(got, [2, 1, 1, 1, 0])  # no legal value at all: value 0
    np.testing.assert_array_equal(np.asarray(legal_action(space, jnp.array([5, 3]))), [0, 3])


def test_multidiscrete_per_factor():
    space = MultiDiscrete((2, 3))
    mask = jnp.array([[True, True, False], [False, False, True]])  # [F, n_max]
    got = np.asarray(legal_action(space, jnp.array([2, 0]), mask))
    np.testing.assert_array_equal(got, [0, 2])  # 2 is outside nvec[0] = 2; 0 masked in f 1
    np.testing.assert_array_equal(np.asarray(legal_action(space, jnp.array([1, 2]), mask)), [1, 2])


def test_box_nan_to_low_then_clip_and_simplex_renormalised():
    box = Box(np.array([-1.0, -np.inf]), np.array([1.0, 5.0]), (2,))
    got = np.asarray(legal_action(box, jnp.array([[jnp.nan, jnp.nan], [3.0, 9.0]])))
    np.testing.assert_array_equal(got, [[-1.0, 0.0], [1.0, 5.0]])
    simplex = Simplex(3)
    got = np.asarray(legal_action(simplex, jnp.array([[jnp.nan, 1.0, 3.0], [-1.0, 0.0, 0.0]])))
    np.testing.assert_allclose(got, [[0.0, 0.25, 0.75], [1 / 3, 1 / 3, 1 / 3]])

"""RandomWalk: move frequencies against move_probs, clipping, validation."""

import jax
import numpy as np
import pytest

from dtwin_jax.mobility import RandomWalk
from dtwin_jax.mobility.random_walk import MOVES


def test_move_frequencies_match_probs():
    probs = np.array(
        [[0.2, 0.2, 0.2, 0.2, 0.2], [0.5, 0.0, 0.1, 0.4, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0],
         [0.05, 0.6, 0.05, 0.1, 0.2]]
    )
    model = RandomWalk(4)
    params = model.make_params(
        move_probs=probs, step_length=2.0, area_min=[-1e5, -1e5], area_max=[1e5, 1e5]
    )
    n = 4000
    state = model.init(jax.random.key(0), params).replace(pos=np.zeros((4, 2), np.float32))
    _, states = jax.jit(model.rollout, static_argnums=3)(jax.random.key(1), state, params, n)
    pos = np.concatenate([np.zeros((1, 4, 2)), np.asarray(states.pos)])
    steps = np.diff(pos, axis=0) / 2.0  # [n, U, 2] unit moves
    # identify each move from the displacement alone: distance to every entry of MOVES
    moves = np.argmin(np.abs(steps[:, :, None, :] - np.asarray(MOVES)).sum(-1), axis=-1)
    np.testing.assert_allclose(np.asarray(MOVES)[moves], steps, atol=1e-3)
    np.testing.assert_array_equal(moves, np.asarray(states.move))
    for u in range(4):
        counts = np.bincount(moves[:, u], minlength=5)
        assert np.all(counts[probs[u] == 0] == 0)
        p = probs[u][probs[u] > 0]
        expected = n * p
        chi2 = np.sum((counts[probs[u] > 0] - expected) ** 2 / expected)
        assert chi2 < 25.0, (u, counts, expected)  # df <= 4: P(chi2 > 25) < 1e-4


def test_clipped_to_dnt_area():
    model = RandomWalk(2)
    params = model.make_params(move_probs=[[0, 0, 0, 0, 1], [0, 1, 0, 0, 0]])
    np.testing.assert_allclose(params.area_min, [-150, -50])
    np.testing.assert_allclose(params.area_max, [150, 50])
    state = model.init(jax.random.key(3), params)
    final, _ = jax.jit(model.rollout, static_argnums=3)(jax.random.key(4), state, params, 70)
    pos0, pos = np.asarray(state.pos), np.asarray(final.pos)
    np.testing.assert_allclose(pos[0], [150.0, pos0[0, 1]], atol=1e-4)  # walked into +x wall
    np.testing.assert_allclose(pos[1], [pos0[1, 0], 50.0], atol=1e-4)  # walked into +y wall


@pytest.mark.parametrize(
    ("overrides", "err", "match"),
    [
        ({"move_probs": [0.3, 0.3, 0.3, 0.3, 0.3]}, ValueError, "sum to 1"),
        ({"move_probs": [1.2, -0.2, 0, 0, 0]}, ValueError, "move_probs"),
        ({"move_probs": [0.5, 0.5]}, ValueError, "broadcastable"),
        ({"move_probs": [0.2, 0.2, 0.2, 0.2, np.nan]}, ValueError, "NaN"),
        ({"step_length": -5.0}, ValueError, "step_length"),
        ({"step_length": "far"}, TypeError, "numeric"),
    ],
)
def test_bad_params_rejected(overrides, err, match):
    with pytest.raises(err, match=match):
        RandomWalk(3).make_params(**overrides)

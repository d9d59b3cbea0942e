"""``benchmarks/peers/edge_numpy_batched.py`` (peer b of ``bench_edge``) computes what the
one-twin NumPy + SciPy reference computes: 3 twins stepped batched and one at a time on the same
draws, over two frames and an auto-reset (no JAX compile; a few seconds)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from peers import edge_numpy_batched as batched  # noqa: E402

from dtwin_jax.envs.edge_retrain import EdgeRetrainEnv  # noqa: E402


@pytest.fixture(scope="module")
def env():
    return EdgeRetrainEnv()


def test_batched_peer_matches_one_twin_reference(env):
    batched.check_against_reference(env, num_twins=3, num_steps=13, episode_length=11)


def test_check_catches_a_wrong_generator_variance(env, monkeypatch):
    right = batched.variance
    monkeypatch.setattr(batched, "variance", lambda gen, b: right(gen, b) * (1 + 1e-6))
    with pytest.raises(AssertionError):
        batched.check_against_reference(env, num_twins=2, num_steps=2)


def test_twin_streams_draw_each_twin_as_its_own_generator():
    streams = batched.TwinStreams([np.random.default_rng(0), np.random.default_rng(1)])
    got = streams.on(np.array([0, 0, 1])).random((3, 2))
    np.testing.assert_array_equal(got[:2], np.random.default_rng(0).random((2, 2)))
    np.testing.assert_array_equal(got[2:], np.random.default_rng(1).random((1, 2)))


def test_other_configurations_are_refused():
    with pytest.raises(ValueError, match="incremental"):
        batched.BatchedEnv(EdgeRetrainEnv(retraining="full"))

"""GRU twin predictor: shipped checkpoint beats "last known position" on held-out drifting
walks, matches a NumPy GRU, runs under jit/vmap, trains and round-trips through a checkpoint,
and refuses bad configs and foreign checkpoints."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.checkpoint import load_checkpoint, save_checkpoint
from dtwin_jax.twins import predictor as pr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "envs"))
import dnt_numpy_reference as ref  # noqa: E402


@pytest.fixture(scope="module")
def shipped():
    return pr.load_predictor()


def test_shipped_gru_beats_last_known_position_on_held_out_walks(shipped):
    # seed 12345 is neither the training (0) nor the validation (1) seed of the checkpoint
    res = pr.evaluate_predictor(shipped, jax.random.PRNGKey(12345), num_traj=1000, horizon=5)
    assert res["mse_model"] < 0.97 * res["mse_last_known"], res
    assert res["mse_oracle"] < res["mse_model"], res
    assert all(m < k for m, k in zip(res["open_loop_model"][1:], res["open_loop_last_known"][1:],
                                     strict=True)), res
    assert len(res["open_loop_model"]) == 5 and res["mean_shift_m"] > 0


def test_shipped_metadata_records_config_command_and_errors():
    _, meta = load_checkpoint(pr.SHIPPED_CHECKPOINT)
    assert meta["kind"] == "dnt_gru_predictor"
    assert meta["command"].startswith("python -m dtwin_jax.twins.predictor")
    cfg = pr.PredictorConfig.from_dict(meta["config"])
    assert (cfg.history, cfg.hidden, cfg.num_train, cfg.traj_len, cfg.lr) == (5, 128, 2000, 30,
                                                                            1e-3)
    assert meta["val"]["mse_model"] < meta["val"]["mse_last_known"]
    assert np.isfinite(meta["train_mse_m2"])


def test_shipped_gru_matches_numpy_gru_and_vmaps(shipped):
    weights, meta = load_checkpoint(pr.SHIPPED_CHECKPOINT)
    np_gru = ref.gru_predictor(weights, pr.PredictorConfig.from_dict(meta["config"]))
    traj, _ = pr.random_walk_trajectories(jax.random.PRNGKey(7), 12, 10, shipped.config)
    hist = jnp.swapaxes(traj[:, :5], 0, 1)  # [K, U, 2]
    got = jax.jit(shipped)(hist)
    assert got.shape == (12, 2) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), np_gru(np.asarray(hist)), atol=2e-4)
    batched = jax.jit(jax.vmap(shipped))(jnp.stack([hist, hist[::-1]]))
    np.testing.assert_allclose(np.asarray(batched[0]), np.asarray(got), atol=1e-5)
    lo, hi = np.asarray(shipped.config.area_min), np.asarray(shipped.config.area_max)
    assert np.all((np.asarray(batched) >= lo) & (np.asarray(batched) <= hi))


def test_persistence_is_last_state():
    hist = jnp.arange(3 * 4 * 2, dtype=jnp.float32).reshape(3, 4, 2)
    np.testing.assert_array_equal(np.asarray(pr.persistence(hist)), np.asarray(hist[-1]))


def test_short_training_round_trips_through_a_checkpoint(tmp_path):
    cfg = pr.PredictorConfig(hidden=8, num_train=40, num_val=20, traj_len=10, batch_size=16,
                             num_updates=100)
    weights, metrics = pr.train_predictor(cfg)
    assert np.isfinite(metrics["train_mse_m2"]) and metrics["val"]["num_traj"] == 20
    path = tmp_path / "gru.msgpack"
    save_checkpoint(path, weights, {"kind": "dnt_gru_predictor", "config": cfg.to_dict()})
    loaded = pr.load_predictor(path)
    hist = jnp.zeros((5, 3, 2), jnp.float32) + jnp.arange(3.0)[None, :, None]
    out = loaded(hist)
    assert out.shape == (3, 2) and np.all(np.isfinite(np.asarray(out)))


def test_foreign_checkpoint_and_bad_config_are_refused(tmp_path):
    path = tmp_path / "other.msgpack"
    save_checkpoint(path, {"w": np.zeros(2, np.float32)}, {"kind": "something"})
    with pytest.raises(ValueError, match="not a dnt_gru_predictor"):
        pr.load_predictor(path)
    with pytest.raises(ValueError, match="history"):
        pr.PredictorConfig(history=0)
    with pytest.raises(ValueError, match="area_max"):
        pr.PredictorConfig(area_min=(0.0, 0.0), area_max=(0.0, 1.0))
    with pytest.raises(ValueError, match="lr"):
        pr.PredictorConfig(lr=0.0)
    with pytest.raises(ValueError, match="horizon"):
        pr.evaluate_predictor(pr.persistence, jax.random.PRNGKey(0), num_traj=4, horizon=40)

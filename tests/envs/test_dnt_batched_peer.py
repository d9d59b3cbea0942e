"""``benchmarks/peers/dnt_numpy_batched.py`` (peer b of ``bench_dnt``) computes what the one-twin
NumPy + SciPy reference computes: a few steps of 3 twins on the same draws, with the GRU and with
the persistence predictor (no JAX compile; a second or two)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from peers import dnt_numpy_batched as batched  # noqa: E402

from dtwin_jax.checkpoint import load_checkpoint  # noqa: E402
from dtwin_jax.envs.dnt_sync import DntSyncEnv  # noqa: E402
from dtwin_jax.twins import predictor as gru  # noqa: E402


def _gru():
    weights, meta = load_checkpoint(gru.SHIPPED_CHECKPOINT)
    return batched.ref.gru_predictor(weights, gru.PredictorConfig.from_dict(meta["config"]))


@pytest.mark.parametrize("predictor", ["gru", "persistence"])
def test_batched_peer_matches_one_twin_reference(predictor):
    params = DntSyncEnv(predictor="persistence").default_params
    pred = _gru() if predictor == "gru" else (lambda history: history[-1])
    batched.check_against_reference(params, 12, 5, pred, num_twins=3, num_steps=4, seed=1)


def test_check_catches_a_wrong_slot(monkeypatch):
    params = DntSyncEnv(predictor="persistence").default_params
    right = batched.slot

    def off_by_a_bit(*args):
        out = right(*args)
        out["rates"] = out["rates"] * (1 + 1e-6)
        return out

    monkeypatch.setattr(batched, "slot", off_by_a_bit)
    with pytest.raises(AssertionError, match="rates"):
        batched.check_against_reference(params, 12, 5, lambda history: history[-1])

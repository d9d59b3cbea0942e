"""slicing_dt: config validation, presets, the reach-level statistics, figures (the Student-t
intervals are dtwin_jax.reporting's, tested in tests/test_reporting.py).

The end-to-end ``small`` preset compiles the packet-level env into five programs (several
minutes on two loaded cores), so it is run by ``python -m dtwin_jax.experiments.slicing_dt
--preset small`` rather than here; the learners and the twin loop it wires are tested in
tests/learners and tests/twins."""

import numpy as np
import pytest

from dtwin_jax.experiments import slicing_dt as sdt


def test_presets_and_validation():
    full = sdt.PRESETS["full"]
    assert len(full.seeds) >= 5 and full.hidden_sizes == (256, 256, 128, 128)
    assert full.lr == 1e-3 and full.num_users == 100 and full.num_slots == 2000
    assert not set(sdt.PRESETS["validation"].seeds) & set(full.seeds)
    assert full.real_config().num_updates == full.loop().real_total
    with pytest.raises(ValueError, match="num_cycles"):
        sdt.SlicingDTConfig(real_steps=400, num_cycles=7)
    with pytest.raises(ValueError, match="seeds"):
        sdt.SlicingDTConfig(seeds=(0,))
    with pytest.raises(TypeError, match="hidden_sizes"):
        sdt.SlicingDTConfig(hidden_sizes=(16, 1.5))
    with pytest.raises(ValueError, match="level"):
        sdt.SlicingDTConfig(level=2.0)


def test_interactions_to_level_by_hand():
    reward = np.array([[0, 0, 1, 1, 1, 1],      # window 2: means 0, .5, 1 -> first at 1 + 2
                       [0, 0, 0, 0, 0, 1]])     # never reaches 1 -> 6
    np.testing.assert_array_equal(sdt.interactions_to_level(reward, 1.0, 2), [4, 6])
    np.testing.assert_array_equal(sdt.interactions_to_level(reward, 0.5, 2), [3, 6])


def test_figures_from_results(tmp_path):
    rng = np.random.default_rng(0)
    curve = rng.normal(size=(3, 20)).tolist()
    ci = {"mean": 1.0, "ci95": 0.1, "n": 3}
    results = {
        "learning": {a: {"reward_curve": curve, "utility_curve": curve}
                     for a in ("dqn", "dqn+twin")},
        "reach_level": {"smooth": 5},
        "evaluation": {s: {"reward": ci, "utility": ci} for s in ("hard_slicing", "dqn")},
        "landscape": {"alpha": [-1.0, 0.0, 1.0],
                      "arms": {"double_dqn": {"loss": [[1.0, 0.5, 1.2]] * 3}}},
    }
    paths = sdt.figures(results, str(tmp_path / "sdt"))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["sdt.png", "sdt_landscape.png",
                                                     "sdt_eval.png"]

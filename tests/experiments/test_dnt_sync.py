"""experiments/dnt_sync.py: config checks, the predictor stage and the figure (the Student-t
intervals are dtwin_jax.reporting's, tested in tests/test_reporting.py).

The training stages are exercised at toy size by tests/learners/test_vdn.py (the learner on
dnt-sync-v0); compiling the experiment's many env shapes here would exceed the test budget.
"""

import numpy as np
import pytest

from dtwin_jax.experiments import dnt_sync


def test_presets_valid_and_seeds_disjoint():
    for cfg in dnt_sync.PRESETS.values():
        assert cfg.seed + cfg.num_seeds <= cfg.validation_seed
    with pytest.raises(ValueError, match="validation_seed"):
        dnt_sync.DntSyncConfig(seed=9_999, num_seeds=8)
    with pytest.raises(ValueError, match="stages"):
        dnt_sync.DntSyncConfig(stages=("nope",))
    with pytest.raises(ValueError, match="factored"):
        dnt_sync.DntSyncConfig(action_form="flat", sweep_users=(16,))
    with pytest.raises(TypeError, match="num_seeds"):
        dnt_sync.DntSyncConfig(num_seeds=8.0)


def test_learner_config_one_episode_per_twin_per_update():
    cfg = dnt_sync.PRESETS["full"]
    lcfg = dnt_sync.learner_config(cfg, "iql")
    assert lcfg.num_steps == cfg.episode_length
    assert lcfg.num_updates == cfg.num_updates
    assert lcfg.lr == cfg.lr_iql and lcfg.gamma == 0.2 and lcfg.mixer == "iql"


def test_predictor_stage_and_figure(tmp_path):
    cfg = dnt_sync.PRESETS["small"]
    pred = dnt_sync.stage_predictor(cfg)
    err = pred["errors_m2"]
    assert err["mse_model"] < err["mse_last_known"]  # the GRU beats "last known position"
    true, predicted = np.asarray(pred["true"]), np.asarray(pred["predicted"])
    assert predicted.shape == (true.shape[0], true.shape[1] - pred["history"], 2)
    ci = {"mean": 1.0, "ci95": 0.1}
    curve = {"mean": [0.0, 1.0], "ci95": [0.1, 0.1]}
    results = {
        "predictor": pred,
        "convergence": {
            "vdn": {"curve_objective": curve, "objective": ci},
            "iql": {"curve_objective": curve, "objective": ci},
            "trace": {"updates": [1.0, 2.0], "twin_error": [3.0, 0.0]},
            "baselines": {"random": {"objective": -1.0}},
        },
        "eps_sweep": {"eps": [0.25, 0.99], "vdn": {"twin_error": [ci, ci],
                                                   "mean_rate": [ci, ci]}},
    }
    path = tmp_path / "fig.png"
    dnt_sync.plot_results(results, str(path))
    assert path.stat().st_size > 1000

"""The LVM-DT experiment runs end to end at a tiny size and writes a sound results file."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from dtwin_jax.experiments import lvm_dt
from dtwin_jax.experiments.lvm_dt import (
    PRESETS,
    LvmDtConfig,
    format_table,
    merge,
    num_updates,
    paired_gain,
    run,
    write_results,
)

TINY = replace(
    PRESETS["demo"], real_map="pyrosm_test", num_bs=4, num_macro=1, num_candidates=2,
    real_users=6, twin_users=(3, 8), eval_users=(6, 10), num_twins=2,
    twin_mobilities=("waypoint",), copies=False, rich_ablation=True, batch_steps=8,
    live_samples=8 * 6 * 2, num_minibatches=2, update_epochs=1, episode_length=4, eval_twins=1,
    eval_steps=4, shadow_cell_m=50.0, hidden=(8,), baselines=("max-SINR", "Ye-dual"),
    num_seeds=2,
)


def test_config_validation():
    with pytest.raises(ValueError, match="multiple"):
        LvmDtConfig(num_twins=3)
    with pytest.raises(ValueError, match="twin_mobilities"):
        LvmDtConfig(twin_mobilities=("teleport",))
    with pytest.raises(ValueError, match="max-SINR"):
        LvmDtConfig(baselines=("random",))


def test_statistics():
    g = paired_gain([1.2, 1.1, 1.3], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(g["per_seed"], [0.2, 0.1, 0.3])
    assert not g["excludes_zero"]  # t(0.975, 2) = 4.3: 0.2 +- 0.25
    assert paired_gain([1.2, 1.21, 1.19], [1.0, 1.0, 1.0])["excludes_zero"]
    # budgets in live samples: more users per twin-step, fewer updates
    assert num_updates(PRESETS["full"], 40) > num_updates(PRESETS["full"], 70)


def test_dual_association_balances_load_on_the_candidate_set():
    """Two users hear BS 0 best; one moves to BS 1 once sharing BS 0 halves its rate below
    what BS 1 offers; a BS outside a user's candidate set is never chosen; inactive -> -1."""
    import jax.numpy as jnp

    from dtwin_jax.experiments.lvm_dt import dual_association

    class Params:
        bandwidth_hz = jnp.float32(20e6)

    sinr = 10 ** (jnp.array([[30.0, 25.0], [30.0, 0.0], [30.0, -5.0]]) / 10)
    active = jnp.array([True, True, False])
    np.testing.assert_array_equal(np.asarray(dual_association(sinr, active, Params())),
                                  [1, 0, -1])
    allowed = jnp.array([[True, False], [True, True], [True, True]])
    np.testing.assert_array_equal(np.asarray(dual_association(sinr, active, Params(),
                                                              allowed)), [0, 0, -1])


def test_tiny_run_writes_results(tmp_path, monkeypatch):
    results = run(TINY)
    base = results["baselines"]
    assert set(base) == {"max-SINR", "Ye-dual"}
    for per in base.values():
        s = per["6"]
        assert 0 < s["cell_edge"] <= s["mean_throughput"] and 0 < s["jain"] <= 1
        np.testing.assert_allclose(s["score"], s["log_utility_per_user_step"]
                                   - 0.1 * s["handovers_per_user_step"])
    assert list(results["arms"]) == ["single", "twins-waypoint (K=2)", "single-rich"]
    single, twins = results["arms"]["single"], results["arms"]["twins-waypoint (K=2)"]
    assert twins["num_twins"] == 2 and len(twins["per_seed"]) == 2
    assert single["updates"] >= twins["updates"]  # more users per twin-step in the twins
    assert len(single["live_samples_per_seed"]) == 2
    mean, half = twins["mean_ci"]["6"]["cell_edge"]
    seeds = [r["6"]["cell_edge"] for r in twins["per_seed"]]
    np.testing.assert_allclose(mean, np.mean(seeds))
    np.testing.assert_allclose(half, stats.t.ppf(0.975, 1) * np.std(seeds, ddof=1) / np.sqrt(2))
    gain = results["headline"]["twins_vs_single"]["twins-waypoint (K=2)"]["10"]["cell_edge"]
    ref = [r["10"]["cell_edge"] for r in single["per_seed"]]
    np.testing.assert_allclose(gain["per_seed"],
                               np.array([r["10"]["cell_edge"] for r in twins["per_seed"]])
                               / np.array(ref) - 1)
    assert "PPO single-rich" in format_table(results)
    # a run split over processes joins back to the same results
    clean = json.loads(json.dumps({k: v for k, v in results.items() if k[0] != "_"}))
    shares = [dict(clean, arms={"single-rich": clean["arms"]["single-rich"],
                                "single": clean["arms"]["single"]}),
              dict(clean, baselines={}, arms={"twins-waypoint (K=2)":
                                              clean["arms"]["twins-waypoint (K=2)"]})]
    joined = merge(shares)
    assert list(joined["arms"]) == list(clean["arms"])
    assert joined["headline"] == clean["headline"] and joined["baselines"] == clean["baselines"]
    json_path, png_path = write_results(results, str(tmp_path))
    loaded = json.load(open(json_path))
    assert "_samples" not in loaded and loaded["config"]["num_twins"] == 2
    assert loaded["provenance"]["commit"]
    assert os.path.getsize(png_path) > 10_000
    # the CLI writes the per-arm checkpoint, then removes it once the complete results are on
    # disk (run replaced by one that checkpoints the results above)
    monkeypatch.setitem(lvm_dt.PRESETS, "demo", TINY)
    monkeypatch.setattr(lvm_dt, "run", lambda config, checkpoint_dir=None, only_arms=None: (
        lvm_dt._checkpoint(results, {}, checkpoint_dir), results)[1])
    out = tmp_path / "cli"
    lvm_dt.main(["--preset", "demo", "--out", str(out)])
    assert (out / "lvm_dt_demo.json").exists() and not (out / lvm_dt.PARTIAL_NAME).exists()

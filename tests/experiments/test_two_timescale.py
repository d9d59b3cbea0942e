"""The two-timescale experiment's bookkeeping: config checks, paired statistics, the committed
results file's headline and figures (the full run is an experiment, not a test)."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from dtwin_jax.experiments import two_timescale as tt

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "two_timescale.json"


def test_config_rejects_bad_fields_by_name():
    with pytest.raises(ValueError, match="stages entry"):
        tt.TwoTimescaleConfig(stages=("train", "nope"))
    with pytest.raises(ValueError, match="num_seeds"):
        tt.TwoTimescaleConfig(num_seeds=1)
    with pytest.raises(ValueError, match="shift_slot"):
        tt.TwoTimescaleConfig(shift_slot=100, episode_length=100)
    with pytest.raises(ValueError, match="arms entry"):
        tt.TwoTimescaleConfig(arms=("proposed", "nope"))
    with pytest.raises(ValueError, match="proposed"):
        tt.TwoTimescaleConfig(arms=("single_timescale",))
    with pytest.raises(ValueError, match="slot_baselines entry"):
        tt.TwoTimescaleConfig(slot_baselines=("nope",))


def test_paired_is_the_t_interval_of_the_differences():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 1, 6), rng.normal(12, 1, 6)
    out = tt.paired(a, b)
    d = a - b
    half = scipy.stats.t.ppf(0.975, 5) * d.std(ddof=1) / np.sqrt(6)
    assert out["difference"]["mean"] == pytest.approx(d.mean())
    assert out["difference"]["ci95"] == pytest.approx(half)
    assert out["excludes_zero"] == (abs(d.mean()) > half)
    assert out["relative_change_of_means"] == pytest.approx(a.mean() / b.mean() - 1)


def test_every_arm_runs_a_distinct_rule():
    rules = set(tt.ARMS.values())
    assert len(rules) == len(tt.ARMS)
    assert tt.ARMS["single_timescale"][1] == 1 and tt.ARMS["proposed"][1] > 1


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed two_timescale.json")
def test_committed_results_headline_and_figures(tmp_path):
    results = json.loads(RESULTS.read_text())
    assert results["config"]["num_seeds"] >= 5
    assert "commit" in results["provenance"]
    head = tt.headline(results)
    for policy in results["arms"]:
        assert set(head[policy]) == {f"proposed_vs_{a}" for a in tt.ARMS if a != "proposed"}
    # the slot baselines are compared on the same seeds
    for rec in results["slot_policies"].values():
        assert rec["delay_ms"]["n"] == results["config"]["num_seeds"]
    paths = tt.figures(results, str(tmp_path / "tt"))
    assert [Path(p).name for p in paths] == ["tt.png", "tt_shift.png"]
    assert all(Path(p).stat().st_size > 10_000 for p in paths)

"""benchmarks/bench_learners.py: a quick run of one learner writes positive, finite rates and
compile time; report.learners renders a README row from such a JSON."""

import importlib
import json
import math
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import report  # noqa: E402


def test_quick_dqn_writes_finite_rates(tmp_path, monkeypatch):
    # importing the script may add to XLA_FLAGS: keep that out of the other tests' environment
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    bench_learners = importlib.import_module("bench_learners")
    out = tmp_path / "learners.json"
    bench_learners.main(["--quick", "--only", "dqn", "--repeats", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert "provenance" in data and data["machine"]["device_kind"]
    (row,) = data["rows"]
    assert row["learner"] == "dqn" and row["env"] == "slicing-v0"
    assert row["metric"] == "env_steps_per_s" and row["batch_is"] == "num_envs"
    for key in ("compile_s", "call_s", "env_steps_per_s", "agent_steps_per_s",
                "gradient_updates_per_s"):
        assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])


def test_report_renders_a_row():
    def row(learner, batch, default, metric, rate):
        return {"learner": learner, "batch": batch, "default": default, "metric": metric,
                metric: rate, "compile_s": 12.3}

    d = {"rows": [row("ppo", 1, False, "env_steps_per_s", 250.0),
                  row("ppo", 4, True, "env_steps_per_s", 900.0),
                  row("ppo", 16, False, "env_steps_per_s", 1234.5),
                  row("cql", 64, True, "gradient_updates_per_s", 3.21)],
         "provenance": {"config": {"repeats": 3}}}
    text = report.learners(d)
    assert text == ("ppo 900 env steps/s at 4 twins (default), 1,234 at 16, compile 12 s; "
                    "cql 3.2 Adam steps/s at minibatch 64 (default), compile 12 s "
                    "(best of 3 calls of the whole compiled training program)")
    assert "bench_learners.json" in [name for name, _, _ in report.ROWS]

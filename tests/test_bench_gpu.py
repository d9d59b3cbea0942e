"""benchmarks/bench_gpu.py on the CPU: a quick run writes link rows that match the NumPy peer
and env rows with finite, positive rates and no non-finite values; a spent time budget stops
an env's growth after its first twin count and says why."""

import json
import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import bench_gpu  # noqa: E402


def test_quick_run_writes_checked_rows(tmp_path):
    out = tmp_path / "gpu.json"
    bench_gpu.main(["--quick", "--envs", "dnt-sync-v0", "--out", str(out)])
    data = json.loads(out.read_text())
    assert "provenance" in data and data["machine"]["device_kind"]
    link = data["link"]
    assert [(r["kernel"], r["batch"]) for r in link] == [
        ("rb_sinr", 16), ("rb_sinr", 64), ("user_bs", 16), ("user_bs", 64)]
    assert link[0]["max_rel_err_vs_numpy"] < 1e-3 and link[2]["max_rel_err_vs_numpy"] < 1e-3
    for r in link:
        per_twin = 32 * 8 * 16 if r["kernel"] == "rb_sinr" else 128 * 22
        assert r["links_per_call"] == r["batch"] * per_twin
        assert math.isfinite(r["links_per_s_best"]) and r["links_per_s_best"] > 0
        assert r["links_per_s_best"] >= r["links_per_s_median"]
    (env,) = data["envs"]
    assert env["env"] == "dnt-sync-v0" and env["stopped"] == "all counts done"
    assert [r["twins"] for r in env["rows"]] == [1, 4]
    for r in env["rows"]:
        assert r["nonfinite"] == 0 and r["agents_per_twin"] == 3
        assert r["twin_steps_per_s"] > 0
        assert math.isclose(r["agent_steps_per_s"], 3 * r["twin_steps_per_s"])
        assert r["resident_bytes"] is None  # the CPU backend keeps no allocator statistics


def test_spent_budget_stops_after_the_first_count(tmp_path):
    out = tmp_path / "gpu.json"
    bench_gpu.main(["--quick", "--envs", "association-v0", "--max-seconds", "0",
                    "--out", str(out)])
    envs = json.loads(out.read_text())["envs"]
    # association-v0 runs twice: at the paper's size (22 BSs, 128 users) and by default
    assert [e["kwargs"] for e in envs] == [{"num_bs": 22, "max_users": 128}, {}]
    for e in envs:
        assert [r["twins"] for r in e["rows"]] == [1]
        assert e["stopped"].startswith("time share")


def test_a_full_device_stops_growth_before_running_out(tmp_path, monkeypatch):
    # a device that reports a 64 kB limit: the next count's footprint (the carry's bytes, as
    # XLA sizes them, plus temporaries) cannot fit, so growth stops after the first count
    monkeypatch.setattr(bench_gpu, "memory_stats", lambda: {"bytes_limit": 2**16})
    out = tmp_path / "gpu.json"
    bench_gpu.main(["--quick", "--envs", "dnt-sync-v0", "--out", str(out)])
    (env,) = json.loads(out.read_text())["envs"]
    assert [r["twins"] for r in env["rows"]] == [1]
    assert env["stopped"].startswith("4 twins would need")
    assert env["rows"][0]["chunk_argument_bytes"] > 0

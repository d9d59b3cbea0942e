"""benchmarks/run_all.py: the quick suite's settings name real flags of every script, and a
CI-sized subset runs end to end into a temporary folder (the whole quick suite takes minutes)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import run_all  # noqa: E402

# the two fastest quick benchmarks (seconds each on an idle 2-core machine)
CI_SUBSET = ("link", "assignment")


@pytest.mark.parametrize("name", sorted(run_all.SUITE))
def test_quick_settings_are_flags_of_the_script(name, tmp_path):
    script, how, quick_argv = run_all.SUITE[name]
    source = (BENCH / script).read_text()
    assert "def main(argv" in source
    for flag in [a for a in quick_argv if a.startswith("--")] + ["--out"] * (how != "results"):
        assert re.search(rf"add_argument\(\s*\"{flag}\"", source), (script, flag)
    if how == "results":
        assert re.search(r"^RESULTS = ", source, re.M), script
    cmd, target = run_all.command(name, tmp_path, quick=True)
    assert cmd[3] == str(BENCH / script) and cmd[4] == str(tmp_path)
    assert (target is None) == (how != "file")


def test_run_all_quick_subset(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--out", str(tmp_path),
         "--only", *CI_SUBSET, "--timeout", "300"],
        capture_output=True, text=True, timeout=400, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    for name in CI_SUBSET:
        assert re.search(rf"^{name}\s+ok\s", out.stdout, re.M), out.stdout
    summary = json.loads((tmp_path / "run_all_quick.json").read_text())
    assert summary["quick"] and summary["machine"]["device_kind"]
    assert [r["name"] for r in summary["rows"]] == list(CI_SUBSET)
    for row in summary["rows"]:
        assert row["status"] == "ok" and row["json"], row
        for path in row["json"]:
            assert "provenance" in json.loads(Path(path).read_text())

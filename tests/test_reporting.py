"""Provenance of results (git commit, dirty flag, command, config, machine, date), atomic
JSON writes and the Student-t intervals of the experiments."""

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from dtwin_jax import reporting
from dtwin_jax.reporting import (
    git_state,
    provenance,
    t_interval,
    t_record,
    write_json,
    write_results,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A fresh git repository with one committed file."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "a.txt").write_text("one\n")
    _git(path, "add", "a.txt")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false",
         "commit", "-q", "-m", "first")
    return path


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    sizes: tuple = (1, 2)


def test_provenance_has_every_key(repo, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--quick"])
    prov = provenance(Cfg(), repo_dir=repo)
    assert set(prov) == {"commit", "dirty", "command", "cwd", "config", "machine", "date"}
    assert prov["command"] == ["bench.py", "--quick"]
    assert prov["config"] == {"lr": 0.1, "sizes": [1, 2]}
    assert {"hostname", "platform", "jax", "device"} <= set(prov["machine"])
    assert datetime.datetime.fromisoformat(prov["date"]).tzinfo is not None
    json.dumps(prov)  # JSON-ready


@needs_git
def test_commit_and_dirty_flag_follow_the_tree(repo):
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.txt").write_text("two\n")  # modified tracked file
    assert git_state(repo) == {"commit": head, "dirty": True}
    _git(repo, "checkout", "-q", "a.txt")
    assert git_state(repo)["dirty"] is False
    (repo / "new.py").write_text("")  # untracked file counts
    assert provenance(repo_dir=repo)["dirty"] is True


def test_outside_a_checkout_is_unknown(tmp_path, repo):
    assert git_state(tmp_path / "nothing") == {"commit": "unknown", "dirty": "unknown"}
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == {"commit": "unknown", "dirty": "unknown"}
    sub = repo / "site-packages"  # inside another checkout but not its top level
    sub.mkdir()
    assert git_state(sub) == {"commit": "unknown", "dirty": "unknown"}


def test_a_named_commit_overrides_what_git_says(tmp_path, repo, monkeypatch):
    plain = tmp_path / "copy"
    plain.mkdir()
    monkeypatch.setenv("DTWIN_GIT_COMMIT", "a" * 40)
    assert git_state(plain) == {"commit": "a" * 40, "dirty": "unknown"}
    monkeypatch.setenv("DTWIN_GIT_DIRTY", "0")
    assert git_state(plain) == {"commit": "a" * 40, "dirty": False}
    # a copy with a stale .git: the named commit wins
    assert git_state(repo) == {"commit": "a" * 40, "dirty": False}


def test_without_git_is_unknown(repo, monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert git_state(repo) == {"commit": "unknown", "dirty": "unknown"}


@needs_git
def test_default_repo_is_this_package_checkout():
    state = git_state()
    if (reporting.PACKAGE_ROOT / ".git").exists():
        assert len(state["commit"]) == 40 and isinstance(state["dirty"], bool)
    else:
        assert state == {"commit": "unknown", "dirty": "unknown"}


def test_config_forms_and_bad_config():
    ns = argparse.Namespace(quick=True, out="x.json")
    assert provenance(ns)["config"] == {"quick": True, "out": "x.json"}
    assert provenance({"a": 1})["config"] == {"a": 1}
    assert provenance()["config"] is None
    with pytest.raises(TypeError, match="config must be JSON-serialisable"):
        provenance({"a": object()})
    with pytest.raises(TypeError, match="config must be None, a dataclass"):
        provenance([1, 2])


def test_write_results_adds_provenance_or_keeps_the_run_start_one(tmp_path):
    path = tmp_path / "r.json"
    written = write_results({"rows": [1]}, path, config={"n": 3})
    on_disk = json.loads(path.read_text())
    assert on_disk == written and on_disk["rows"] == [1]
    assert on_disk["provenance"]["config"] == {"n": 3}
    early = {"rows": [2], "provenance": {"commit": "abc"}}
    write_results(early, path, config={"n": 4})
    assert json.loads(path.read_text())["provenance"] == {"commit": "abc"}
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    with pytest.raises(TypeError, match="results must be a mapping"):
        write_results([1], path)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_json({"a": 1}, path)
    with pytest.raises(TypeError):
        write_results({"a": object()}, path)  # fails while encoding, after the temp file opened
    assert json.loads(path.read_text()) == {"a": 1}

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_json({"a": 2}, path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ------------------------------------------------------------------ Student-t intervals
def test_t_interval_closed_form_and_scipy():
    v = [1.0, 2.0, 4.0, 3.0, 5.0]  # mean 3, s^2 = 2.5, t(0.975, 4) = 2.7764451...
    mean, half = t_interval(v)
    assert isinstance(mean, float) and isinstance(half, float)
    assert mean == 3.0
    np.testing.assert_allclose(half, 2.7764451051977987 * np.sqrt(2.5 / 5), rtol=1e-12)
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 40):
        x = rng.normal(3.0, 2.0, n)
        for level in (0.8, 0.95, 0.99):
            lo, hi = stats.t.interval(level, n - 1, loc=x.mean(), scale=stats.sem(x))
            np.testing.assert_allclose(t_interval(x, level=level), ((lo + hi) / 2, (hi - lo) / 2),
                                       rtol=1e-12)


def test_t_interval_axes_single_sample_and_nan():
    rng = np.random.default_rng(1)
    c = rng.normal(size=(4, 6))  # [seeds, T]
    mean, half = t_interval(c)
    assert mean.shape == half.shape == (6,)
    for t in range(6):
        np.testing.assert_allclose((mean[t], half[t]), t_interval(c[:, t]), rtol=1e-12)
    np.testing.assert_allclose(t_interval(c, axis=1)[1][2], t_interval(c[2])[1], rtol=1e-12)
    np.testing.assert_allclose(t_interval(c, axis=None), t_interval(c.ravel()), rtol=1e-12)
    # one sample: no spread estimate, half-width 0 (what the results files record); none: NaN
    assert t_interval([2.5]) == (2.5, 0.0)
    assert np.isnan(t_interval([])).all()
    assert np.isnan(t_interval([1.0, np.nan])[0])  # NaN propagates unless skipped
    c[:3, 0] = np.nan  # one seed left at t = 0
    c[1, 4] = np.nan
    mean, half = t_interval(c, skip_nan=True)
    assert (mean[0], half[0]) == (c[3, 0], 0.0)
    np.testing.assert_allclose((mean[4], half[4]), t_interval(c[[0, 2, 3], 4]), rtol=1e-12)
    np.testing.assert_allclose(half[5], t_interval(c[:, 5])[1], rtol=1e-12)
    c[:, 1] = np.nan
    assert np.isnan(t_interval(c, skip_nan=True)[0][1])
    with pytest.raises(ValueError, match="level"):
        t_interval([1.0, 2.0], level=1.0)


def test_t_record_is_the_results_files_record():
    x = np.array([[1.0, 2.0], [4.0, 7.0]])
    rec = t_record(x)
    assert list(rec) == ["mean", "ci95", "n"] and rec["n"] == 4
    assert (rec["mean"], rec["ci95"]) == t_interval(x.ravel())
    assert json.loads(json.dumps(t_record(x, values=True)))["values"] == [1.0, 2.0, 4.0, 7.0]
    assert t_record([3.0]) == {"mean": 3.0, "ci95": 0.0, "n": 1}

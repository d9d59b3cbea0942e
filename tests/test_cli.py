"""The ``dtwin`` command: help, envs, and argument checks that fail fast with one line."""

import os
import subprocess
import sys

import pytest

from dtwin_jax import cli
from dtwin_jax.cli import build_parser, main


def test_help_lists_commands():
    text = build_parser().format_help()
    assert "demo" in text and "envs" in text


def test_envs_lists_association(capsys):
    assert main(["envs"]) == 0
    assert "association-v0" in capsys.readouterr().out


def test_unknown_command_exits_with_usage_error(capsys):
    with pytest.raises(SystemExit) as err:
        main(["nonsense"])
    assert err.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "dtwin_jax.cli", "--help"], capture_output=True,
                         text=True, check=True)
    assert "usage: dtwin" in out.stdout


@pytest.fixture
def no_demo_run(monkeypatch):
    """Fail the test if the demo itself would start (the checks must come first)."""

    def started(args):
        raise AssertionError("demo started despite bad arguments")

    monkeypatch.setattr(cli, "_cmd_demo", started)


def _bad(argv, capsys, match):
    """Run ``main(argv)``; expect exit status 2 and one stderr line containing ``match``."""
    try:
        code = main(argv)
    except SystemExit as err:  # argparse's own usage errors
        code = err.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_demo_seed_out_of_range(tmp_path, capsys, no_demo_run, seed):
    _bad(["demo", "--seed", seed, "--out", str(tmp_path)], capsys, "--seed must be an integer")


@pytest.mark.parametrize("seed", ["1.5", "abc"])
def test_demo_seed_not_an_integer(tmp_path, capsys, no_demo_run, seed):
    _bad(["demo", "--seed", seed, "--out", str(tmp_path)], capsys, "invalid int value")


def test_demo_out_under_a_file_cannot_be_created(tmp_path, capsys, no_demo_run):
    (tmp_path / "file").write_text("x")
    _bad(["demo", "--out", str(tmp_path / "file" / "sub")], capsys, "cannot be created")
    _bad(["demo", "--out", str(tmp_path / "file")], capsys, "is not a directory")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_demo_out_not_writable(capsys, no_demo_run):
    _bad(["demo", "--out", "/proc/self"], capsys, "is not writable")  # even for root


def test_demo_valid_args_reach_the_demo_and_leave_no_probe_file(tmp_path, monkeypatch):
    seen = {}

    def fake_demo(args):
        seen["args"] = args
        return 0

    monkeypatch.setattr(cli, "_cmd_demo", fake_demo)
    out = tmp_path / "new" / "dir"
    assert main(["demo", "--seed", "7", "--out", str(out)]) == 0
    assert seen["args"].seed == 7 and out.is_dir()
    assert list(out.iterdir()) == []


def test_demo_bad_seed_exit_code_through_a_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dtwin_jax.cli", "demo", "--seed", "-1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"dtwin demo: error: --seed must be an integer in [0, {2**32 - 1}], got -1"
    ]
    assert proc.stdout == ""


# ----------------------------------------------------------------------------- the full CLI

PROBE = "probe-counter-v0"
PROBE_SETS = ["num_envs=2", "num_steps=4", "total_timesteps=48", "update_epochs=1",
              "num_minibatches=2", "hidden_sizes=(8,)", "chunk_updates=2",
              "params.horizon=3"]


@pytest.fixture
def probe_env():
    from dtwin_jax.envs import registry

    registry.register(PROBE, "probe_envs:CounterEnv")
    yield
    registry.unregister(PROBE)


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any command body would start (the checks must come first)."""

    def started(args):
        raise AssertionError("work started despite bad arguments")

    for name in ("_cmd_train", "_cmd_resume", "_cmd_eval", "_cmd_bench", "_cmd_sample",
                 "_cmd_reproduce"):
        monkeypatch.setattr(cli, name, started)


def test_help_lists_every_command():
    text = build_parser().format_help()
    for command in ("list", "train", "resume", "eval", "bench", "sample-trajectories",
                    "reproduce"):
        assert command in text


def test_list_shows_envs_learners_experiments_papers(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("association-v0", "ppo", "lvm_dt", "lvm-dt", "map2traj"):
        assert word in out


@pytest.mark.parametrize("argv, match", [
    (["train", "no-such-thing"], "is not an experiment"),
    (["train", PROBE, "--set", "bogus=1"], "bogus"),
    (["train", PROBE, "--set", "lr=-1"], "lr=-1.0 is out of range"),
    (["train", PROBE, "--set", "novalue"], "key=value"),
    (["train", PROBE, "--set", "env.nope=1"], "unknown env key"),
    (["train", "lvm_dt", "--set", "preset=nope"], "preset 'nope'"),
    (["train", "lvm_dt", "--set", "no_field=1"], "unknown lvm_dt config key"),
    (["resume", "/no/such/run"], "does not exist"),
    (["eval", "."], "not a run directory"),
    (["eval", ".", "--steps", "0"], "not a run directory"),
    (["sample-trajectories", "--map", "atlantis", "--n", "2"], "neither a bundled map"),
    (["sample-trajectories", "--map", "pyrosm_test", "--n", "0"], "--n must be"),
    (["sample-trajectories", "--map", "pyrosm_test", "--n", "2", "--out", "x.csv"],
     "must end with .npz"),
    (["reproduce", "nope"], "unknown paper"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, match, capsys, no_work, probe_env):
    _bad(argv, capsys, match)


def test_bad_map_file_is_one_line(tmp_path, capsys, no_work):
    bad = tmp_path / "map.npz"
    bad.write_bytes(b"not a zip")
    _bad(["sample-trajectories", "--map", str(bad), "--n", "2"], capsys, "not a readable")


def test_bench_calls_run_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_benchmarks_dir", lambda: tmp_path)
    _bad(["bench"], capsys, "no benchmarks/run_all.py")
    (tmp_path / "run_all.py").write_text("import sys\nsys.exit(0 if sys.argv[1:] == "
                                         "['--quick'] else 3)\n")
    assert main(["bench", "--quick"]) == 0
    assert main(["bench"]) == 3


def test_train_interrupt_resume_eval_end_to_end(tmp_path, probe_env, monkeypatch, capsys):
    import json
    import signal

    from dtwin_jax import runs

    save = runs.Checkpoints.save

    def save_then_ctrl_c(self, step, runner, meta):
        save(self, step, runner, meta)
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the run

    monkeypatch.setattr(runs.Checkpoints, "save", save_then_ctrl_c)
    run_dir = tmp_path / "run"
    argv = ["train", PROBE, "--out", str(run_dir), "--no-progress"]
    for item in PROBE_SETS:
        argv += ["--set", item]
    assert main(argv) == 130
    assert "status: interrupted" in capsys.readouterr().out
    _bad(argv, capsys, "already holds a run")
    monkeypatch.setattr(runs.Checkpoints, "save", save)
    assert main(["resume", str(run_dir), "--no-progress"]) == 0
    assert "updates_done: 6" in capsys.readouterr().out
    assert main(["eval", str(run_dir), "--steps", "3"]) == 0
    assert json.loads((run_dir / "eval.json").read_text())["checkpoint_step"] == 6
    _bad(["resume", str(run_dir), "--step", "5"], capsys, "no checkpoint at step 5")
    for name in ("config.json", "metrics.csv", "metrics.json", "summary.json",
                 "figures/training.png"):
        assert (run_dir / name).is_file(), name

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

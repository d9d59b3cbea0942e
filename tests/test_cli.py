import subprocess
import sys

import pytest

from dtwin_jax.cli import build_parser, main


def test_help_lists_commands():
    text = build_parser().format_help()
    assert "demo" in text and "envs" in text


def test_envs_lists_association(capsys):
    assert main(["envs"]) == 0
    assert "association-v0" in capsys.readouterr().out


def test_unknown_command_exits_with_usage_error():
    with pytest.raises(SystemExit) as err:
        main(["nonsense"])
    assert err.value.code == 2


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "dtwin_jax.cli", "--help"], capture_output=True,
                         text=True, check=True)
    assert "usage: dtwin" in out.stdout

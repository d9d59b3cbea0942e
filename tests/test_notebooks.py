"""Notebooks: stored without outputs, valid code, and executed at smoke size (DTWIN_SMOKE=1).

Every notebook runs in every test session, every cell (figures and tables included). A paper
notebook's smoke branch calls its experiment with a tiny config (fewer seeds, updates, stages,
arms or baselines); XLA compiles dominate there (each learner, arm and baseline is a program of
its own), so each takes about a minute or two on 2 CPU cores.
"""

import ast
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_every_promised_notebook_exists():
    for name in ("quickstart.ipynb", "scale.ipynb", "paper_lvm_dt.ipynb",
                 "paper_dnt_sync.ipynb", "paper_slicing_dt.ipynb",
                 "paper_two_timescale.ipynb"):
        assert name in ALL


@pytest.mark.parametrize("name", ALL)
def test_stored_without_outputs_and_code_parses(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs"
            ast.parse(cell.source)


@pytest.mark.parametrize("name", ALL)
def test_executes_at_smoke_size(name, tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from nbclient import NotebookClient

    monkeypatch.setenv("DTWIN_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = str(NOTEBOOKS.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not any(out.get("output_type") == "error" for cell in nb.cells
                   for out in cell.get("outputs", []))

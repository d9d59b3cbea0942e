"""The README's quick start runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_block_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    exec(compile(blocks[0], "README quick start", "exec"), {})
    assert "cell_edge" in capsys.readouterr().out


def test_benchmark_table_is_generated_from_the_results(tmp_path):
    import sys

    sys.path.insert(0, str(README.parent / "benchmarks"))
    import report

    text = README.read_text()
    assert report.readme_section(text) == report.table(), (
        "README benchmark table differs from benchmarks/results: run python "
        "benchmarks/report.py")
    # a result missing from the folder is said so, not left out
    assert "not measured (no `bench_link.json`)" in report.table(tmp_path)
    fig = report.scaling_figure(report.RESULTS, tmp_path / "scaling.png")
    assert fig is not None and fig.stat().st_size > 10_000

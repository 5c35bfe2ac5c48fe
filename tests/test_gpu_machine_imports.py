"""The lent GPU machine has torch, triton and pandas but not plotly or streamlit (../shared/device/README.md): the
commands that run there (bench, collect) must not import the report or dashboard stack. A device call once lost
its bench to `perfmodel bench --csv` importing perfmodel.reporting (and so plotly) to write the CSV."""

from __future__ import annotations

from pathlib import Path

import pytest
from module_imports import run_without

ROOT = Path(__file__).resolve().parents[1]
PLOTTING = ("plotly", "streamlit", "kaleido")  # what the GPU machine does not have
CLI = "import runpy\nsys.argv = ['perfmodel'] + sys.argv[1:]\nrunpy.run_module('perfmodel', run_name='__main__')\n"


def _perfmodel(*args, cwd=ROOT):
    return run_without(CLI, PLOTTING, cwd, timeout=600, args=args)


@pytest.mark.parametrize("command", ["bench", "collect"])
def test_gpu_commands_start_without_plotting_packages(command):
    out = _perfmodel(command, "--help")
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.interpreter
def test_interpreted_collect_runs_without_plotting_packages(tmp_path):
    out = _perfmodel("collect", "--interpret", "--stages", "stage0_baseline", "--refs", "none",
                     "--config", "B=1,H=1,S=17,D=64", "--out", str(tmp_path))
    assert out.returncode == 0, (out.stdout[-1500:], out.stderr[-2000:])
    assert any(tmp_path.iterdir())


def test_bench_writes_its_csv_without_plotting_packages(tmp_path):
    code = ("import pandas as pd\nfrom pathlib import Path\nfrom perfmodel.commands import bench\n"
            f"bench._write_csv(pd.DataFrame({{'impl': ['stage5_full']}}), Path({str(tmp_path / 'b.csv')!r}))\n")
    out = run_without(code, PLOTTING, ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "b.csv").read_text().startswith("impl")

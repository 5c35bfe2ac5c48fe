"""The lent GPU machine has torch, triton and pandas but not plotly or streamlit (../shared/device/README.md): the
commands that run there (bench, collect) must not import the report or dashboard stack. A device call once lost
its bench to `perfmodel bench --csv` importing perfmodel.reporting (and so plotly) to write the CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """
import importlib.abc, runpy, sys
class _NoPlotting(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('plotly', 'streamlit', 'kaleido'):
            raise ImportError('not on the GPU machine: ' + name)
sys.meta_path.insert(0, _NoPlotting())
sys.argv = ['perfmodel'] + sys.argv[1:]
runpy.run_module('perfmodel', run_name='__main__')
"""


def _perfmodel(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


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
    code = BLOCKER.split("sys.argv")[0] + (
        "import pandas as pd\nfrom pathlib import Path\nfrom perfmodel.commands import bench\n"
        f"bench._write_csv(pd.DataFrame({{'impl': ['stage5_full']}}), Path({str(tmp_path / 'b.csv')!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "b.csv").read_text().startswith("impl")

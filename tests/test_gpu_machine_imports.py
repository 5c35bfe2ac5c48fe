"""The lent GPU machine has torch, triton and pandas but not plotly or streamlit (../shared/device/README.md): the
commands that run there (bench, collect) must not import the report or dashboard stack. A device call once lost
its bench to `perfmodel bench --csv` importing perfmodel.reports.reporting (and so plotly) to write the CSV."""

from __future__ import annotations

from pathlib import Path

import pytest
from module_imports import run_without

ROOT = Path(__file__).resolve().parents[1]
PLOTTING = ("plotly", "streamlit", "kaleido")  # what the GPU machine does not have
CLI = "import runpy\nsys.argv = ['perfmodel'] + sys.argv[1:]\nrunpy.run_module('perfmodel', run_name='__main__')\n"


def _perfmodel(*args, cwd=ROOT):
    return run_without(CLI, PLOTTING, cwd, timeout=600, args=args)


@pytest.mark.parametrize("command", ["bench", "collect", "merge"])
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


def _shard(path, index):
    """A shard run folder as `perfmodel collect --shard I/2` leaves it, with one case (no GPU, no collect)."""
    from runstore.writer import RunWriter

    cfg = {"config_id": f"c{index}", "B": 1, "H": 1, "S": 16, "D": 64, "causal": False, "dtype": "fp16"}
    meta = {"suite": "custom", "mode": "gpu", "configs": [cfg], "impls": [{"name": "stage0_baseline"}],
            "options": {"stages": "stage0_baseline"}, "environment": {"gpu_name": "NVIDIA H200", "git_commit": "abc"},
            "shard": {"index": index, "count": 2, "configs": [f"c{index}"], "suite_configs": ["c1", "c2"],
                      "plan_id": "p", "unit": "config"}}
    w = RunWriter(path, meta)
    w.append("timings", [{"impl": "stage0_baseline", **cfg, "status": "ok", "time_ms": 1.0 + index,
                          "time_ms_ci_low": 0.9 + index, "time_ms_ci_high": 1.1 + index}])
    w.append("cases", [{"impl": "stage0_baseline", **cfg, "status": "ok"}])
    w.finish("complete")
    return path


def test_merge_and_the_agreement_check_run_without_plotting_packages(tmp_path):
    """The device check (scripts/device_shard_check.sh) merges shards and compares timings on the GPU machine."""
    a, b = _shard(tmp_path / "a", 1), _shard(tmp_path / "b", 2)
    out = _perfmodel("merge", str(a), str(b), "--out", str(tmp_path / "merged"))
    assert out.returncode == 0, out.stderr[-2000:]
    out = _perfmodel("compare", str(tmp_path / "merged"), str(tmp_path / "merged"), "--agreement")
    assert out.returncode == 0 and "2 of 2 cases" in out.stderr, (out.stdout[-1500:], out.stderr[-2000:])

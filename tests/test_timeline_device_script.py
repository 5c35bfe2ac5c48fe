"""scripts/device_timeline.py where it can run without a GPU: it needs nothing the GPU machine lacks (plotly,
streamlit), refuses in one sentence where Proton's instrumentation mode cannot run, and writes and prints its
tables (here from the SYNTHETIC fixture, tests/timeline_fixture.py)."""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from module_imports import run_without

from collectors.timeline.figures import FIGURE_COLUMNS, figures
from collectors.timeline.read import read_timeline
from kernels.suites import SEED
from runstore.schema import case_key, column_problem, columns
from tests import timeline_fixture as fx

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_timeline.py"
PLOTTING = ("plotly", "streamlit", "kaleido")  # what the GPU machine does not have


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("device_timeline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_timeline"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["device_timeline"]


def test_what_it_imports_is_on_the_gpu_machine():
    """Every module a case imports loads without the plotting stack (the script imports them lazily)."""
    code = ("import runpy, sys\nsys.path.insert(0, '.')\n"
            "import collectors.timeline.capture, collectors.timeline.read, collectors.timeline.figures\n"
            "import collectors.timing.measure, collectors.timing.stats, runstore.schema\n"
            "import kernels._launch, kernels.workload\n"
            "for s in ('stage1_warpspec', 'stage2_reduced_sync', 'stage3_persistent', 'stage4_overlap', "
            "'stage5_full'):\n    __import__('kernels.' + s)\n"
            "runpy.run_path('scripts/device_timeline.py', run_name='not_main')\n")
    out = run_without(code, PLOTTING, ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="on a GPU the script records timelines")
def test_without_a_gpu_it_refuses_in_one_sentence(tmp_path):
    out = run_without(f"import runpy, sys\nsys.argv = ['device_timeline.py', '--out', {str(tmp_path)!r}]\n"
                      "runpy.run_path('scripts/device_timeline.py', run_name='__main__')\n", PLOTTING, ROOT)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no timeline can be recorded" in lines[0] and "Traceback" not in out.stderr
    assert lines[0].endswith(".")


@pytest.mark.parametrize("argv, message", [(["--stages", "9"], "--stages takes numbers among 1, 2, 3, 4, 5"),
                                           (["--configs", "B=1"], "bad --configs")])
def test_bad_arguments(script, capsys, argv, message):
    assert script.main(argv) == 2
    assert message in capsys.readouterr().err


def test_tables_archive_and_printout(script, tmp_path, capsys):
    tl = read_timeline(fx.FIXTURE, fx.LAYOUT)
    key = case_key("stage4_overlap", SEED)
    figs = figures(tl).assign(**key, status="ok", reason="")
    files = script.write_tables(tmp_path, SEED, [tl.assign(**key)], [figs])
    timeline = pq.read_table(files[0])
    assert timeline.column_names == columns("timeline") and timeline.num_rows == len(fx.SCHEDULE)
    assert column_problem("timeline", timeline.column_names, timeline.schema.types) is None
    stored = pd.read_parquet(files[1])
    assert set(FIGURE_COLUMNS) <= set(stored.columns) and set(stored["impl"]) == {"stage4_overlap"}
    script.archive(tmp_path, SEED, files)
    with tarfile.open(tmp_path / f"timeline-{SEED.id}.tar") as tar:
        assert sorted(tar.getnames()) == sorted(str(f.relative_to(tmp_path)) for f in files)
    assert not any(f.exists() for f in files)  # the device tool brings back at most 8 files: only the tar stays
    row = {**key, "status": "refused", "reason": "the instrumented kernel took 12.0% longer than the bare one.",
           "bare_ms": 0.5, "instrumented_ms": 0.56, "timing_method": "cuda_graph", "overhead_pct": 12.0,
           "overhead_ci_low_pct": 11.0, "overhead_ci_high_pct": 13.0}
    script.print_case(figs, row)
    script.print_side_by_side(SEED, [figs])
    printed = capsys.readouterr().out
    assert "pingpong_share.softmax" in printed and "refused: the instrumented kernel took 12.0%" in printed
    assert "0.38 [0.38-0.38]" in printed  # consumer 0's ping-pong share, 90 of 240 softmax cycles
    script.write_summary(tmp_path, [row], printed)
    assert (tmp_path / "summary.csv").is_file() and "refused" in (tmp_path / "summary.txt").read_text()


def test_gpu_folders(script):
    assert script.gpu_folder("NVIDIA H200") == "h200" and script.gpu_folder("NVIDIA H100 80GB HBM3") == "h100"

"""The laptop install (base + [dashboard], no torch, no triton) reads the bundled runs: report, gates, predict,
model, runs, compare and every dashboard page on the default run (the H200 run) and on the H100 run named by its id,
whose report says, without git, that its kernel code is not the installed one; and the GPU-only commands say which
extra they need.

CI runs this file in a second virtual environment that has neither torch nor triton (.ci/run); the main suite,
which has both, skips it here and runs it instead under an import blocker that makes `import torch` and
`import triton` fail (tests/test_packaging.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from perfmodel.cli import main
from perfmodel import runs
from perfmodel.runs import bundled_run_dirs, default_run_dir, gpu_name, load_run

GPU_MODULES = ("torch", "triton", "nvtx", "pynvml")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the blocker of tests/test_packaging.py refuses the look-up itself
        return False


pytestmark = pytest.mark.skipif(_importable("torch") or _importable("triton"),
                                reason="the laptop install has neither torch nor triton (tests/test_packaging.py "
                                       "runs this file with both blocked)")

BUNDLED = default_run_dir()
H100 = "20261124-173318-custom-nvidia-h100-80gb-hbm3"  # bundled, measured on the tl stages 1-5 of 2026-11-24
APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")

# page file -> title (tests/test_app_pages.py checks the charts and tables on a synthetic run)
PAGES = {"overview": "Predicted vs measured", "stages": "Stages", "constraints": "Constraints",
         "stalls": "Stall reasons", "roofline": "Roofline", "batching": "Batching", "correctness": "Correctness",
         "runs": "Runs"}


@pytest.mark.parametrize("argv, codes", [
    (["predict", "--config", "B=16,H=16,S=2048,D=64,causal"], {0}),
    (["model", "check"], {0}),
    (["model", "show"], {0}),
    (["gates"], {0, 1, 3}),  # the verdict is the run's; 2 would be bad input
    (["runs", str(BUNDLED.parent)], {0}),
    (["compare", str(BUNDLED), str(BUNDLED)], {0}),
])
def test_reading_commands(argv, codes, capsys):
    assert main(argv) in codes
    out, err = capsys.readouterr()
    assert out and "Traceback" not in out + err


def test_the_default_is_the_h200_run():
    assert BUNDLED.name == "20261202-053909-seed-nvidia-h200" and {H100, BUNDLED.name} <= {
        d.name for d in bundled_run_dirs()}


@pytest.mark.parametrize("fmt", ["html", "md"])
@pytest.mark.parametrize("run_id", [None, H100])
def test_report_on_each_bundled_run(run_id, fmt, tmp_path, capsys):
    out = tmp_path / f"report.{fmt}"
    assert main(["report", *([run_id] if run_id else []), "--format", fmt, "--out", str(out)]) == 0
    run = load_run(runs.resolve_run_dirs([run_id] if run_id else None)[0])
    assert gpu_name(run) in out.read_text(encoding="utf-8")


def test_the_kernel_code_line_needs_no_git(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git, nothing else either: the hashes are files and run.json
    runs.installed_kernels.cache_clear()
    try:
        assert main(["report", H100, "--no-model", "--format", "md", "--out", "-"]) == 0
        assert "- **kernels**: measured with kernel code that differs from the installed kernels/" in \
            capsys.readouterr().out
    finally:
        runs.installed_kernels.cache_clear()


def test_python_api_reads_the_bundled_run():
    import perfmodel

    run = perfmodel.load_run(BUNDLED)
    assert not run.table("timings").empty
    assert gpu_name(run) in perfmodel.report(run, fmt="md")


@pytest.mark.parametrize("argv", [["collect", "--suite", "tiny", "--no-ncu"], ["collect", "--interpret"],
                                  ["bench", "--suite", "tiny"]])
def test_gpu_commands_name_the_extra(argv, tmp_path, capsys):
    assert main([*argv, *(["--out", str(tmp_path)] if argv[0] == "collect" else [])]) == 2
    err = capsys.readouterr().err
    assert "needs the [gpu] extra" in err and "pip install 'perfmodel[gpu]'" in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module", params=[None, H100], ids=["default", "h100"])
def app(request, monkeypatch_module):
    from streamlit.testing.v1 import AppTest

    if request.param is None:
        monkeypatch_module.delenv("PERFMODEL_RUN_DIRS", raising=False)  # no run given: the default bundled one
    else:
        monkeypatch_module.setenv("PERFMODEL_RUN_DIRS", str(runs.resolve_run_dirs([request.param])[0]))
    return AppTest.from_file(APP, default_timeout=120).run(), runs.resolve_run_dirs([request.param] if request.param
                                                                                  else None)[0]


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("page", list(PAGES))
def test_dashboard_page_on_each_bundled_run(app, page):
    app, run_dir = app
    app.switch_page(f"app_pages/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == [PAGES[page]]
    assert len(app.dataframe) + len(app.get("plotly_chart")) >= 1
    assert gpu_name(load_run(run_dir)) in " ".join(m.value for m in app.sidebar.markdown)


def test_the_inside_the_kernel_page_says_the_run_has_no_timeline(app):
    from perfmodel.reports.timeline_view import NO_TIMELINE

    app, _ = app
    app.switch_page("app_pages/timeline.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert [t.value for t in app.title] == ["Inside the kernel"] and [i.value for i in app.info] == [NO_TIMELINE]


def test_no_gpu_module_was_imported():
    # last in this file: everything above ran without importing any of them
    assert not [m for m in GPU_MODULES if m in sys.modules]

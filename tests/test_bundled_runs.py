"""The runs that ship with the package: the H100 run every command defaults to, and the H200 seed run of the
Gluon stages (with Nsight Compute counters and the ablation), named by its id."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfmodel import runs

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
H200 = "20261202-053909-seed-nvidia-h200"


def test_both_gpus_ship_and_the_h100_run_is_the_default():
    names = [d.name for d in runs.bundled_run_dirs()]
    assert runs.DEFAULT_BUNDLED_RUN in names and H200 in names
    assert runs.default_run_dir().name == runs.DEFAULT_BUNDLED_RUN
    gpus = {runs.load_run(d).environment.get("gpu_name") for d in runs.bundled_run_dirs()}
    assert gpus == {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}


def test_a_bundled_run_is_named_by_its_id(tmp_path, monkeypatch):
    (path,) = runs.resolve_run_dirs([H200])
    assert path.name == H200 and path.is_dir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / H200).mkdir()  # a folder of that name here wins over the bundled run
    assert runs.resolve_run_dirs([H200]) == [Path(H200)]


def test_the_h200_run_has_counters_ablation_and_every_stage():
    run = runs.load_run(runs.resolve_run_dirs([H200])[0])
    timings = run.table("timings")
    stages = timings[timings["impl"].str.startswith("stage") & (timings["status"] == "ok")]
    assert len(stages) == 6
    assert not run.table("ncu_metrics").empty and not run.table("stalls").empty
    assert (run.table("ablation")["status"] == "ok").sum() >= 4


@pytest.mark.parametrize("page", ["stalls", "stages", "overview"])
def test_dashboard_pages_render_the_h200_run(page, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(runs.resolve_run_dirs([H200])[0]))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "NVIDIA H200" in " ".join(m.value for m in at.sidebar.markdown)


@pytest.mark.parametrize("run_id", [runs.DEFAULT_BUNDLED_RUN, H200])
def test_the_bundled_reports_stay_under_1_5_mb(run_id, tmp_path):
    # issue 12: the HTML embeds only the plotly.js it needs (the basic bundle), <= 1.5 MB for the bundled run
    from perfmodel.cli import main

    out = tmp_path / "r.html"
    assert main(["report", run_id, "--out", str(out)]) == 0
    assert out.stat().st_size <= 1_500_000, out.stat().st_size

"""The runs that ship with the package: the H200 seed run of today's Gluon stages (with Nsight Compute counters and
the ablation), which every command reads when given no run, and the H100 run of 2026-11-24, measured on the `tl`
stages 1-5 that kernels/ no longer holds, named by its id. Both are read by every test here that reads a report or
a page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perfmodel import runs

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
H100 = "20261124-173318-custom-nvidia-h100-80gb-hbm3"
H200 = "20261202-053909-seed-nvidia-h200"
BUNDLED = [H200, H100]


def test_both_gpus_ship_and_the_h200_run_is_the_default():
    names = [d.name for d in runs.bundled_run_dirs()]
    assert H100 in names and H200 in names
    assert runs.default_run_dir().name == H200
    assert runs.resolve_run_dirs(None) == [runs.default_run_dir()]
    gpus = {runs.load_run(d).environment.get("gpu_name") for d in runs.bundled_run_dirs()}
    assert gpus == {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}


def _bundle_copies(tmp_path, monkeypatch, created: dict[str, str]) -> dict[str, Path]:
    """Both bundled runs copied under tmp_path, with `created` replaced, standing in for the bundled ones."""
    out = {}
    for d in runs.bundled_run_dirs():
        dst = shutil.copytree(d, tmp_path / d.name)
        meta = json.loads((dst / "run.json").read_text())
        meta["created"] = created.get(d.name, meta["created"])
        (dst / "run.json").write_text(json.dumps(meta))
        out[d.name] = dst
    monkeypatch.setattr(runs, "bundled_run_dirs", lambda: sorted(out.values(), key=lambda p: p.name))
    return out


def _installed_as(monkeypatch, run_dir: Path | None) -> None:
    """The installed kernels package hashes as `run_dir`'s kernel code (None: as no bundled run's)."""
    env = runs.load_run(run_dir).environment if run_dir else {"kernels_hash": "0" * 12, "kernels_files": {}}
    code = {"kernels_hash": env["kernels_hash"], "kernels_files": env["kernels_files"]}
    monkeypatch.setattr(runs, "installed_kernels", lambda: code)


def test_the_default_is_the_newest_bundled_run_of_the_installed_kernels(tmp_path, monkeypatch):
    # the H100 run made newer than the H200 run: still not the default while the H200 run is of today's kernels
    copies = _bundle_copies(tmp_path, monkeypatch, {H100: "2026-12-05T00:00:00+0000"})
    _installed_as(monkeypatch, copies[H200])
    assert runs.default_run_dir() == copies[H200]
    _installed_as(monkeypatch, copies[H100])  # (an install of the H100 run's kernels)
    assert runs.default_run_dir() == copies[H100]
    _installed_as(monkeypatch, None)  # no bundled run of the installed kernels: the newest by `created`
    assert runs.default_run_dir() == copies[H100]


def test_with_no_run_of_the_installed_kernels_the_newest_bundled_run_is_the_default(tmp_path, monkeypatch):
    copies = _bundle_copies(tmp_path, monkeypatch, {})
    _installed_as(monkeypatch, None)  # e.g. a working tree with kernels/ edited since either run
    assert runs.default_run_dir() == copies[H200]  # 2026-12-02, the H100 run 2026-11-24


def test_a_bundled_run_is_named_by_its_id(tmp_path, monkeypatch):
    (path,) = runs.resolve_run_dirs([H100])
    assert path.name == H100 and path.is_dir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / H100).mkdir()  # a folder of that name here wins over the bundled run
    assert runs.resolve_run_dirs([H100]) == [Path(H100)]


def test_the_h200_run_has_counters_ablation_and_every_stage():
    run = runs.load_run(runs.resolve_run_dirs([H200])[0])
    timings = run.table("timings")
    stages = timings[timings["impl"].str.startswith("stage") & (timings["status"] == "ok")]
    assert len(stages) == 6
    assert not run.table("ncu_metrics").empty and not run.table("stalls").empty
    assert (run.table("ablation")["status"] == "ok").sum() >= 4


def test_the_h100_run_says_its_kernel_code_is_not_the_installed_one():
    code = runs.kernel_code(runs.load_run(runs.resolve_run_dirs([H100])[0]))
    assert code.status == "differs" and code.run_hash == "60cd5aa3508c"  # kernels/ at commit 3127b5c
    assert "backfilled from git commit 3127b5c" in code.line and f"installed: {code.installed_hash}" in code.line
    # stage 0's tl kernel was the last file unchanged since; its launcher now takes fp8 inputs too
    assert "every file differs, is new or is gone" in code.line


@pytest.mark.parametrize("page", ["stalls", "stages", "overview"])
@pytest.mark.parametrize("run_id", BUNDLED)
def test_dashboard_pages_render_each_bundled_run(run_id, page, monkeypatch):
    from streamlit.testing.v1 import AppTest

    run = runs.load_run(runs.resolve_run_dirs([run_id])[0])
    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(run.path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert runs.gpu_name(run) in " ".join(m.value for m in at.sidebar.markdown)
    if page == "overview" and run_id == H100:  # the kernel-code line, as the report's header has it
        assert any(runs.kernel_code(run).line in w.value for w in at.warning)


@pytest.mark.parametrize("run_id", BUNDLED)
def test_the_bundled_reports_stay_under_1_5_mb(run_id, tmp_path):
    # issue 12: the HTML embeds only the plotly.js it needs (the basic bundle), <= 1.5 MB for the bundled run
    from perfmodel.cli import main

    out = tmp_path / "r.html"
    assert main(["report", run_id, "--out", str(out)]) == 0
    assert out.stat().st_size <= 1_500_000, out.stat().st_size

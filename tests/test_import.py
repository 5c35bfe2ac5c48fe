"""`perfmodel import PROFILE`: Nsight Compute reports of any kernels (the committed fixtures our collector captured
on the H100 and H200, and the same export with its NVTX ranges removed) become run folders that `runs`, `report`
and the stall views read; bad input is one sentence."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from perfmodel.cli import main
from runstore.reader import load_run

DATA = Path(__file__).resolve().parent / "data"
HAS_NCU_REPORT = importlib.util.find_spec("ncu_report") is not None


def _imported(tmp_path, *args) -> object:
    out = tmp_path / "runs"
    assert main(["import", *args, "--out", str(out)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return load_run(run_dir)


@pytest.mark.skipif(not HAS_NCU_REPORT, reason="needs NVIDIA's ncu_report module (pip install -e '.[ncu]')")
def test_import_ncu_rep_keeps_our_cases_and_reads_the_gpu(tmp_path):
    run = _imported(tmp_path, str(DATA / "h200" / "profile.ncu-rep.gz"))
    assert run.status == "complete" and run.meta["mode"] == "import"
    assert run.environment["gpu_name"] == "NVIDIA H200"
    m = run.table("ncu_metrics")
    assert "stage0_baseline" in set(m["impl"]) and (m["config_id"] == "B1-H2-S256-D64-causal-fp16").any()
    assert not run.table("stalls").empty
    assert {"ncu_metrics", "stalls"} <= set(run.tables()) and "timings" not in run.tables()


@pytest.mark.skipif(not HAS_NCU_REPORT, reason="needs NVIDIA's ncu_report module (pip install -e '.[ncu]')")
def test_import_a_report_named_relative_to_the_working_folder(tmp_path, monkeypatch):
    # ncu_report finds no relative path ("... does not exist"): a user's `perfmodel import profile.ncu-rep`
    import gzip
    import shutil

    with gzip.open(DATA / "h200" / "profile.ncu-rep.gz") as src, open(tmp_path / "profile.ncu-rep", "wb") as dst:
        shutil.copyfileobj(src, dst)
    monkeypatch.chdir(tmp_path)
    run = _imported(tmp_path, "profile.ncu-rep")
    assert not run.table("ncu_metrics").empty


@pytest.mark.parametrize("gpu", ["h100", "h200"])
def test_import_csv_exports(tmp_path, gpu):
    run = _imported(tmp_path, str(DATA / gpu / "raw.csv"), "--details", str(DATA / gpu / "details.csv"))
    m = run.table("ncu_metrics")
    assert {"raw", "details"} <= set(m["source"])
    assert run.environment["gpu_name"] is None and run.environment["missing"]["gpu_name"]


def test_kernels_outside_any_range_are_named_by_their_function(tmp_path):
    text = (DATA / "h200" / "raw.csv").read_text()
    import re

    stripped = re.sub(r'perfmodel:[^"]*REGISTERED:[^"]*', "", text)
    (tmp_path / "raw.csv").write_text(stripped)
    run = _imported(tmp_path, str(tmp_path / "raw.csv"))
    m = run.table("ncu_metrics")
    assert set(m["config_id"]) == {"imported"}
    assert "_attn_fwd" in set(m["impl"])  # stage 0's Triton kernel, profiled outside the toolkit's ranges
    stalls = run.table("stalls")
    assert set(stalls["impl"]) <= set(m["impl"]) and not stalls.empty
    # the report reads it: its stall reasons, and a line instead of a failure where timings are needed
    out = tmp_path / "r.md"
    assert main(["report", str(run.path), "--format", "md", "--out", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    assert "## Stall reasons" in md and "_attn_fwd" in md


@pytest.mark.parametrize("args,words", [
    (["nowhere.ncu-rep"], "does not exist"),
    (["{data}/h200/details.csv"], "holds no profiled kernel"),  # a details export given as the raw one
    (["{readme}"], "not an Nsight Compute raw CSV export"),
    (["{data}/h200/profile.ncu-rep.gz", "--details", "{data}/h200/details.csv"], "--details goes with"),
    (["{data}/h200/raw.csv", "--details", "nowhere.csv"], "does not exist"),
])
def test_bad_profiles_are_one_sentence(tmp_path, capsys, args, words):
    args = [a.format(data=DATA, readme=DATA.parent.parent / "README.md") for a in args]
    assert main(["import", *args, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err

"""Nsight Compute reports read through NVIDIA's ncu_report (collectors/ncu/read.py), checked against the CSV
exports of the same reports.

Fixtures, each made on the real GPU by this project's own collector, never written to suit a reader:
- tests/data/h100/: the bundled run's report (perfmodel/bundled/20261124-173318-custom-nvidia-h100-80gb-hbm3,
  37 kernels) and its `--csv --page raw` / `--page details` exports (`--print-units base`);
- tests/data/h200/: one session of collectors.sweep.ncu_phase.profile on the lent H200 (ncu 2025.3.1, with
  `--import-source yes`) over stage 0 at B1-H2-S256-D64-causal-fp16, the same case again as an extra case
  labelled `stage0_baseline#dev1`, and the exp2 probe; the CSV exports are the ones that session's fallback wrote.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest

from collectors.ncu import metrics as M, parse as ncu_parse, read as ncu_read

ncu_report = pytest.importorskip("ncu_report", reason="NVIDIA's ncu_report (pip install ncu-report, the [ncu] extra)")

DATA = Path(__file__).resolve().parent / "data"
GPUS = ("h100", "h200")
# The details export shows three rows of the memory workload analysis that the report's sections do not carry as
# metrics (collectors/ncu/read.py docstring); every other row is in both.
CSV_ONLY_DETAILS = {"Memory Workload Analysis: L2 Compression Input Sectors",
                    "Memory Workload Analysis: L2 Compression Ratio",
                    "Memory Workload Analysis: L2 Compression Success Rate"}
KEY = ["impl", "config_id", "kernel_index", "source", "raw_metric"]


def _gunzip(src: Path, dst: Path) -> Path:
    with gzip.open(src, "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("reports")
    return {gpu: _gunzip(DATA / gpu / "profile.ncu-rep.gz", tmp / f"{gpu}.ncu-rep") for gpu in GPUS}


@pytest.fixture(scope="module")
def from_report(reports) -> dict[str, pd.DataFrame]:
    return {gpu: ncu_read.read_report(path) for gpu, path in reports.items()}


@pytest.fixture(scope="module")
def from_csv() -> dict[str, pd.DataFrame]:
    return {gpu: ncu_parse.tidy_metrics(ncu_parse.parse_raw_csv((DATA / gpu / "raw.csv").read_text()),
                                        ncu_parse.parse_details_csv((DATA / gpu / "details.csv").read_text()))
            for gpu in GPUS}


@pytest.mark.parametrize("gpu", GPUS)
def test_the_report_holds_every_row_of_the_csv_export_within_its_rounding(gpu, from_report, from_csv):
    exact, rounded = from_report[gpu], from_csv[gpu]
    # the same frame whichever source: columns and their types
    assert list(exact.columns) == list(rounded.columns) == ncu_parse.TIDY_COLUMNS
    assert exact.dtypes.to_dict() == rounded.dtypes.to_dict()
    both = rounded.merge(exact, on=KEY, how="outer", suffixes=("_csv", "_report"), indicator=True)
    assert set(both.loc[both["_merge"] == "left_only", "raw_metric"]) <= CSV_ONLY_DETAILS
    assert (both["_merge"] != "right_only").all()
    both = both[both["_merge"] == "both"]
    assert (both["unit_csv"] == both["unit_report"]).all() and (both["metric_csv"] == both["metric_report"]).all()
    # the export prints two decimals: it is off by at most half of 0.01, plus float64's own error on large counts
    error = (both["value_csv"] - both["value_report"]).abs()
    assert (error <= 0.005 + 1e-12 * both["value_report"].abs()).all()


def test_stall_reasons_the_export_rounds_to_zero_are_exact_in_the_report(from_report, from_csv):
    keys = ["impl", "config_id", "kernel_index", "reason"]
    stalls = ncu_parse.stalls_table(from_csv["h100"]).merge(
        ncu_parse.stalls_table(from_report["h100"]), on=keys, suffixes=("_csv", "_report"))
    hidden = stalls[(stalls["cycles_per_issue_csv"] == 0) & (stalls["cycles_per_issue_report"] > 0)]
    assert len(hidden) > 0 and (hidden["cycles_per_issue_report"] < 0.005).all()
    assert "branch_resolving" in set(hidden["reason"])  # constraint 1's own stall (ANCHORS.md)
    keyed = ["impl", "config_id", "kernel", "kernel_index"]
    assert ncu_parse.stalls_table(from_report["h100"]).groupby(keyed)["fraction"].sum().sub(1).abs().max() < 1e-12


def test_an_extra_case_comes_back_under_its_label(from_report, from_csv):
    config = "B1-H2-S256-D64-causal-fp16"
    for tidy in (from_report["h200"], from_csv["h200"]):
        cases = set(zip(tidy["impl"], tidy["config_id"]))
        assert cases == {("stage0_baseline", config), ("stage0_baseline#dev1", config), ("probe_exp2", "probe")}
    # with the session's mapping, the case's columns are merged in for the label too
    mapping = {f"stage0_baseline#dev1:{config}": {"impl": "stage0_baseline#dev1", "config_id": config, "B": 1,
                                                   "H": 2, "S": 256, "D": 64, "causal": True, "dtype": "fp16"}}
    tidy = ncu_read.read_report(DATA / "h200" / "profile.ncu-rep.gz", mapping)
    labelled = tidy[tidy["impl"] == "stage0_baseline#dev1"]
    assert not labelled.empty and (labelled["S"] == 256).all()
    assert tidy.loc[tidy["impl"] == "stage0_baseline", "S"].isna().all()  # not in the mapping: no case columns


def test_nvtx_ranges_map_to_cases_like_a_csv_cell():
    known = {"stage5_full#3fa9c2d1:B1-H2-S256-D64-full-fp16": ("stage5_full#3fa9c2d1", "B1-H2-S256-D64-full-fp16")}
    assert ncu_parse.case_of_ranges([("perfmodel", "stage5_full#3fa9c2d1:B1-H2-S256-D64-full-fp16")]) == \
        ("stage5_full#3fa9c2d1", "B1-H2-S256-D64-full-fp16")
    # a name given in the mapping wins in any domain; the `<impl>:<config_id>` form counts in perfmodel's only
    assert ncu_parse.case_of_ranges([("other", "stage5_full#3fa9c2d1:B1-H2-S256-D64-full-fp16")], known) == \
        known["stage5_full#3fa9c2d1:B1-H2-S256-D64-full-fp16"]
    assert ncu_parse.case_of_ranges([("other", "stage0_baseline:B1-H2-S256-D64-full-fp16")]) is None
    assert ncu_parse.case_of_ranges([("<default domain>", "x")]) is None
    cell = '1  "perfmodel:stage5_full#3fa9c2d1:B1-H2-S256-D64-full-fp16:none:none"'
    assert ncu_parse.case_of(cell) == ("stage5_full#3fa9c2d1", "B1-H2-S256-D64-full-fp16")


@pytest.mark.parametrize("gpu", GPUS)
def test_every_metric_of_the_mapping_is_in_the_reports(gpu, reports):
    action = ncu_report.load_report(str(reports[gpu])).range_by_idx(0).action_by_idx(0)
    names = set(action.metric_names())
    assert [raw for raw in M.METRICS.values() if raw not in names] == []
    # on Hopper the hmma cycle counter counts wgmma too; the gmma one counts warp-group MMA instructions
    assert "HGMMA" in action.metric_by_name(M.METRICS["tensor_pipe_pct"]).description()
    assert "HGMMA" in action.metric_by_name(M.METRICS["tensor_gmma_pipe_pct"]).description()


def test_import_source_puts_the_triton_source_in_the_report(reports):
    action = ncu_report.load_report(str(reports["h200"])).range_by_idx(0).action_by_idx(0)
    assert any(name.endswith("kernels/stage0_baseline.py") for name in dict(action.source_files()))


def test_the_pypi_module_is_found_first_and_says_its_version():
    found = ncu_read.load_module()
    assert found is not None and found.describe()["module"] == "ncu_report"
    assert found.version and found.describe()["path"].endswith("ncu_report")


def test_the_copy_shipped_with_ncu_is_found_from_the_ncu_path(tmp_path, monkeypatch):
    install = tmp_path / "nsight-compute" / "2025.3.1"
    (install / "extras" / "python").mkdir(parents=True)
    (install / "ncu").write_text("#!/bin/sh\n")
    (install / "extras" / "python" / "ncu_report.py").write_text("def load_report(path):\n    return None\n")
    monkeypatch.setattr(ncu_read, "DEFAULT_GLOBS", ())
    assert ncu_read.shipped_dirs(install / "ncu") == [install / "extras" / "python"]
    # the CUDA toolkit's bin/ncu runs <toolkit>/nsight-compute-*/ncu
    toolkit = tmp_path / "cuda"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "ncu").write_text("#!/bin/sh\n")
    shutil.copytree(install, toolkit / "nsight-compute-2025.3.1")
    assert ncu_read.shipped_dirs(toolkit / "bin" / "ncu") == [toolkit / "nsight-compute-2025.3.1" / "extras" / "python"]
    monkeypatch.delitem(sys.modules, "ncu_report")  # as if the PyPI package were not there (restored afterwards)
    found = ncu_read._import(install / "extras" / "python")
    assert found.describe() == {"module": "ncu_report", "version": "2025.3.1",
                                "path": str(install / "extras" / "python")}
    assert str(install / "extras" / "python") not in sys.path


def test_nothing_to_import_means_no_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "ncu_report", None)  # `import ncu_report` now raises ImportError
    assert ncu_read.load_module(None) is None
    with pytest.raises(ncu_read.NcuError, match="pip install ncu-report"):
        ncu_read.read_report(DATA / "h100" / "profile.ncu-rep.gz")


def test_a_crash_of_the_module_is_an_unreadable_report_not_a_dead_collector(tmp_path, monkeypatch):
    # a module whose load_report dies the way the shipped 2025.3.1 copy did on the H200 (SIGSEGV)
    crashing = tmp_path / "crashing"
    crashing.mkdir()
    (crashing / "ncu_report.py").write_text(
        f"import os\ndef load_report(path):\n    os.kill(os.getpid(), {int(signal.SIGSEGV)})\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(crashing), os.environ.get("PYTHONPATH", "")]))
    with pytest.raises(ncu_read.ReportUnreadable, match="SIGSEGV"):
        ncu_read.read_in_child(DATA / "h200" / "profile.ncu-rep.gz")


def test_the_child_reads_what_the_parent_reads(from_report):
    child = ncu_read.read_in_child(DATA / "h200" / "profile.ncu-rep.gz")
    pd.testing.assert_frame_equal(child, from_report["h200"])
    with pytest.raises(ncu_read.ReportUnreadable, match="does not exist"):
        ncu_read.read_in_child(DATA / "h200" / "no-such.ncu-rep")
    assert not math.isnan(child["value"].sum())

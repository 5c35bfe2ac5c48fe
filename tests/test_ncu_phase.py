"""The collector's Nsight Compute phase (collectors/sweep/ncu_phase.py) with a stand-in `ncu` (no GPU here) that
"profiles" by handing back a real report: the H200 session of tests/data/h200/ (stage 0, the same case as the extra
case `stage0_baseline#dev1`, the exp2 probe). Checked: the source recorded in run.json (ncu_report, or the CSV
exports when it cannot be imported), the metrics the GPU does not list (recorded and returned as a problem),
`--import-source yes` on the command line, extra cases under their label, a resume that profiles nothing twice,
and `reparse` of the committed runs' counters from their reports."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest

from collectors.ncu import metrics as M, parse as ncu_parse, read as ncu_read
from collectors.sweep import ncu_phase
from kernels.workload import AttentionConfig
from runstore.reader import load_run
from runstore.writer import RunWriter

pytest.importorskip("ncu_report", reason="NVIDIA's ncu_report (pip install ncu-report, the [ncu] extra)")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CFG = AttentionConfig(B=1, H=2, S=256, D=64, causal=True, dtype="fp16")  # the config of tests/data/h200/
EXTRA = [{"impl": "stage0_baseline", "label": "stage0_baseline#dev1", "config": CFG, "tuned_config": "BLOCK_M=64"}]
MISSING = M.METRICS["tensor_gmma_pipe_pct"]  # the stand-in's listing leaves this one out

FAKE_NCU = """#!{python}
import gzip, json, shutil, sys
args = sys.argv[1:]
data = {data!r}
if "--query-metrics" in args:  # one line per counter, as `ncu --query-metrics` prints them
    for name in {listing!r}:
        print(name + "   Counter   inst   a counter")
elif "--import" in args:  # the CSV exports of the report
    print(open(data + "/" + args[args.index("--page") + 1] + ".csv").read(), end="")
else:  # a session: the worker's line per case, then the report
    cases = json.load(open(args[args.index("--cases") + 1]))["cases"]
    with open(args[args.index("--report") + 1], "a") as log:
        for case in cases:
            log.write(json.dumps(dict(impl=case["impl"], range=case["range"], status="ok", error=None,
                                      warmup_s=0.5, profiled_s=0.25)) + "\\n")
    with gzip.open(data + "/profile.ncu-rep.gz") as f, open(args[args.index("-o") + 1] + ".ncu-rep", "wb") as g:
        shutil.copyfileobj(f, g)
    print("==PROF== Report written")
"""


@pytest.fixture
def fake_ncu(tmp_path) -> Path:
    listing = sorted({M.base_name(m) for m in M.extra_metrics()} - {M.base_name(MISSING)})
    path = tmp_path / "bin" / "ncu"
    path.parent.mkdir()
    path.write_text(FAKE_NCU.format(python=sys.executable, data=str(DATA / "h200"), listing=listing))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def writer(tmp_path) -> RunWriter:
    w = RunWriter(tmp_path / "run", {"configs": [{"config_id": CFG.id, **CFG.as_dict()}]})
    w.append("correctness", [{"impl": "stage0_baseline", "config_id": CFG.id, **CFG.as_dict(), "status": "ok"}])
    return w


class Steps:
    def __init__(self):
        self.expected, self.labels = None, []

    def expect(self, n):
        self.expected = n

    def step(self, label):
        self.labels.append(label)


def _profile(writer, ncu, **kw):
    return ncu_phase.profile(writer, ncu, "2025.3.1.0", [CFG], extra_cases=EXTRA, **kw)


def test_one_session_read_through_ncu_report_with_the_extra_case_under_its_label(writer, fake_ncu):
    steps = Steps()
    problems = _profile(writer, fake_ncu, steps=steps)
    # the metric this GPU does not list: left off, recorded for the session, and printed by collect (one line)
    assert problems == [ncu_phase.dropped_problem([MISSING])] and MISSING in problems[0]
    session = load_run(writer.path).meta["ncu"]["sessions"][0]
    assert session["metrics_dropped"] == [MISSING]
    assert session["parsed_from"] == "ncu_report" and "csv_reason" not in session
    assert session["ncu_report"] == ncu_read.load_module().describe()
    assert "--import-source yes" in session["command"]
    assert "perfmodel@stage0_baseline#dev1:B1-H2-S256-D64-causal-fp16/" in session["command"]
    assert session["cases"] == session["cases_profiled"] == 3 and session["status"] == "ok"
    assert steps.expected == 3 and len(steps.labels) == 3
    # the worker resolves the registry name, runs the pinned config, and ranges the label
    cases = json.loads((writer.path / "ncu" / "cases-1.json").read_text())["cases"]
    extra = next(c for c in cases if c["range"].startswith("stage0_baseline#dev1:"))
    assert extra["impl"] == "stage0_baseline" and extra["tuned_config"] == "BLOCK_M=64"
    run = load_run(writer.path)
    metrics, stalls = run.table("ncu_metrics"), run.table("stalls")
    assert set(metrics["impl"]) == set(stalls["impl"]) == {"stage0_baseline", "stage0_baseline#dev1", "probe_exp2"}
    labelled = metrics[metrics["impl"] == "stage0_baseline#dev1"]
    assert (labelled["config_id"] == CFG.id).all() and (labelled["B"] == 1).all() and labelled["causal"].all()
    assert metrics.loc[metrics["impl"] == "probe_exp2", "B"].isna().all()
    assert not (writer.path / "ncu" / "raw.csv").exists()  # no export was needed


def test_a_resume_profiles_nothing_twice(writer, fake_ncu):
    _profile(writer, fake_ncu)
    rows = len(load_run(writer.path).table("ncu_metrics"))
    assert _profile(writer, fake_ncu) == []
    run = load_run(writer.path)
    assert len(run.meta["ncu"]["sessions"]) == 1 and len(run.table("ncu_metrics")) == rows


def test_without_ncu_report_the_csv_exports_are_read_into_the_same_frame(writer, fake_ncu, monkeypatch, tmp_path):
    exact_run = RunWriter(tmp_path / "exact", {})
    exact_run.append("correctness", load_run(writer.path).table("correctness").drop(columns="run_id"))
    _profile(exact_run, fake_ncu)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ncu_report", None)  # `import ncu_report` raises ImportError
        m.setattr(ncu_read, "DEFAULT_GLOBS", ())  # and no ncu install ships a copy
        _profile(writer, fake_ncu)
    session = load_run(writer.path).meta["ncu"]["sessions"][0]
    assert session["parsed_from"] == "csv" and session["ncu_report"] is None
    assert "could not be imported" in session["csv_reason"]
    assert (writer.path / "ncu" / "raw.csv").is_file() and (writer.path / "ncu" / "details.csv").is_file()
    rounded, exact = load_run(writer.path).table("ncu_metrics"), load_run(exact_run.path).table("ncu_metrics")
    assert list(rounded.columns) == list(exact.columns)
    assert set(zip(rounded["impl"], rounded["config_id"])) == set(zip(exact["impl"], exact["config_id"]))
    assert list(load_run(writer.path).table("stalls").columns) == list(load_run(exact_run.path).table("stalls").columns)


def test_reparse_replaces_a_runs_counters_with_the_reports(tmp_path):
    bundled = ROOT / "perfmodel" / "bundled" / "20261124-173318-custom-nvidia-h100-80gb-hbm3"
    run_dir = shutil.copytree(bundled, tmp_path / "run")
    before = load_run(run_dir).table("stalls")
    out = ncu_phase.reparse(run_dir, DATA / "h100" / "profile.ncu-rep.gz")
    run = load_run(run_dir)
    assert out["cases"] == 37 and out["stalls_rows"] == len(run.table("stalls")) == len(before)
    for table in ("ncu_metrics", "stalls"):
        assert len(list((run_dir / "tables" / table).glob("part-*.parquet"))) == 1
    session = run.meta["ncu"]["sessions"][0]
    assert session["parsed_from"] == "ncu_report" and session["reparsed_from"].endswith("profile.ncu-rep.gz")
    assert run.table("ncu_metrics")["run_id"].eq(run.run_id).all()


@pytest.mark.parametrize("run_dir, report", [
    ("perfmodel/bundled/20261124-173318-custom-nvidia-h100-80gb-hbm3", "tests/data/h100/profile.ncu-rep.gz"),
    ("runs/20261127-121629-seed-nvidia-h100-80gb-hbm3", "runs/20261127-121629-seed-nvidia-h100-80gb-hbm3/"
                                                         "profile.ncu-rep.gz"),
])
def test_the_shipped_runs_hold_the_exact_stall_values_of_their_reports(run_dir, report):
    keys = ["impl", "config_id", "kernel_index", "reason"]
    stored = load_run(ROOT / run_dir).table("stalls")
    exact = ncu_parse.stalls_table(ncu_read.read_report(ROOT / report))
    both = stored.merge(exact, on=keys, suffixes=("", "_report"), validate="one_to_one")
    assert len(both) == len(stored) == len(exact)
    assert (both["cycles_per_issue"] == both["cycles_per_issue_report"]).all()
    assert load_run(ROOT / run_dir).meta["ncu"]["sessions"][0]["parsed_from"] == "ncu_report"

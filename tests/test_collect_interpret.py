"""`perfmodel collect --interpret` end to end on the CPU: two stages and one peer on the tiny suite, through
`main(argv)`. The run folder must hold correctness and census rows, GPU measurements as `not_measured` with null
values (never invented), and `--resume` must skip what is finished and redo only a case that was cut off."""

from __future__ import annotations

import json
import math

import pytest

from kernels.suites import get_suite
from perfmodel.cli import main
from runstore.reader import load_run

pytestmark = pytest.mark.interpreter

STAGES = ["stage0_baseline", "stage1_warpspec"]  # a tl stage the interpreter runs, a Gluon stage it cannot
PEER = "sdpa_cudnn"  # needs CUDA: recorded as unavailable under the interpreter, not dropped


@pytest.fixture(scope="module")
def interpreted_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["collect", "--interpret", "--stages", ",".join(STAGES), "--refs", PEER, "--out", str(out),
                 "--determinism", "3"])
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1
    return code, runs[0]


def test_run_completes_and_says_what_it_could_not_measure(interpreted_run):
    code, path = interpreted_run
    assert code == 0
    run = load_run(path)
    assert run.status == "complete" and run.meta["mode"] == "interpret" and run.meta["suite"] == "tiny"
    assert [c["config_id"] for c in run.meta["configs"]] == [c.id for c in get_suite("tiny")]
    env = run.environment
    assert env["gpu_name"] is None and env["missing"]["gpu_name"]  # not obtainable -> None with a reason
    assert env["torch_version"] and env["triton_version"] and env["command_line"]
    assert run.meta["ncu"]["status"] == "not_measured"
    assert json.loads((path / "run.json").read_text())["run_id"] == run.run_id
    # the invocation's wall time and where it went
    phases = run.meta["phases_s"]
    assert set(phases) == {"predictions", "cases", "census"} and all(v >= 0 for v in phases.values())
    assert run.meta["wall_s"] >= sum(phases.values()) - 0.2


def test_the_run_records_its_kernel_code_and_the_tables_it_wrote(interpreted_run):
    """Issue 21: run.json names the kernel code measured (a hash of the installed kernels package, so a report
    can tell it from today's without git) and every table written (so a copy that lost one is named)."""
    from kernels.source import COLLECTED_KERNELS_SOURCE, kernels_code
    from perfmodel.runs import kernel_code

    run = load_run(interpreted_run[1])
    env = run.environment
    assert env["kernels_hash"] == kernels_code()["kernels_hash"] and "stage0_baseline.py" in env["kernels_files"]
    assert env["kernels_hash_source"] == COLLECTED_KERNELS_SOURCE
    assert kernel_code(run).status == "installed" and kernel_code(run).line == ""
    assert run.meta["tables_written"] == run.tables() and run.missing_tables() == []


def test_predictions_are_stored_before_the_first_case(interpreted_run):
    """Issue 13: the predictions of a suite are written before it is measured, with the model's version and a hash
    of what each read."""
    from perfmodel.model.predictive import MODEL_VERSION

    run = load_run(interpreted_run[1])
    p = run.table("predictions")
    configs = get_suite("tiny")
    assert len(p) == len(configs) * len(STAGES) * 2  # every stage x config, by the bound and by the model
    assert set(p["predictor"]) == {"bound", "model"} and set(p["impl"]) == set(STAGES)
    assert (p["gpu"] == "h100-sxm").all() and (p["model_version"] == MODEL_VERSION).all()
    assert p["inputs_hash"].str.fullmatch("[0-9a-f]{12}").all()
    assert (p["status"] == "ok").all(), p[["impl", "config_id", "predictor", "error"]]
    assert (p["time_ms"] > 0).all() and p["binding"].notna().all()
    assert p["predicted_at"].max() <= run.table("cases")["finished"].min()
    assert run.meta["predictions"]["status"] == "ok" and run.meta["predictions"]["n_rows"] == len(p)


def test_correctness_rows_for_every_case(interpreted_run):
    run = load_run(interpreted_run[1])
    df = run.table("correctness")
    n_configs = len(get_suite("tiny"))
    assert len(df) == n_configs * (len(STAGES) + 1)
    stages = df[df["impl"] == "stage0_baseline"]
    assert (stages["status"] == "ok").all(), stages[["impl", "config_id", "error"]]
    assert (stages["max_abs_err"] <= stages["budget_abs_err"]).all()
    assert stages["within_budget"].all()
    assert stages["doc_allclose"].notna().all() and stages["doc_max_err_ok"].all()
    # the Gluon stage is not measured on the CPU (no Gluon interpreter), and says so; it is not "failed"
    gluon = df[df["impl"] == "stage1_warpspec"]
    assert (gluon["status"] == "not_measured").all() and gluon["error"].str.contains("no Gluon interpreter").all()
    assert gluon["max_abs_err"].isna().all()
    peer = df[df["impl"] == PEER]
    assert (peer["status"] == "unavailable").all() and peer["error"].str.contains("CUDA").all()


def test_gpu_measurements_are_not_measured_with_null_values(interpreted_run):
    run = load_run(interpreted_run[1])
    for table, values in (("timings", ["time_ms", "tflops", "bare_time_ms"]),
                          ("launch", ["host_launch_us", "launch_share"]),
                          ("determinism", ["n_runs", "n_identical"])):
        df = run.table(table)
        assert len(df) == len(get_suite("tiny")) * (len(STAGES) + 1), table
        stages = df[df["impl"].isin(STAGES)]
        assert (stages["status"] == "not_measured").all(), table
        assert (df[df["impl"] == PEER]["status"] == "unavailable").all(), table
        for col in values:
            assert df[col].map(lambda v: v is None or (isinstance(v, float) and math.isnan(v))).all(), (table, col)
    ceilings = run.table("ceilings")
    assert (ceilings["status"] == "not_measured").all() and ceilings["value"].isna().all()
    assert run.table("ncu_metrics").empty and run.table("stalls").empty


def test_census_of_each_stage_and_config(interpreted_run):
    run = load_run(interpreted_run[1])
    census = run.table("census")
    assert sorted(set(census["impl"])) == STAGES  # peers have no census
    assert len(census) == len(STAGES) * len(get_suite("tiny"))
    ok = census[census["status"] == "ok"]
    assert not ok.empty
    assert (ok["wgmma"] > 0).all() and (ok["ex2"] > 0).all() and (ok["registers"] > 0).all()


def test_resume_skips_finished_cases_and_redoes_a_cut_off_one(interpreted_run, capsys):
    path = interpreted_run[1]
    parts = lambda: sorted(p.relative_to(path) for p in (path / "tables").rglob("part-*.parquet"))  # noqa: E731
    before = parts()
    assert main(["collect", "--resume", str(path)]) == 0
    assert parts() == before  # everything was finished: nothing measured again
    # Cut off the last case as a kill between its tables and its log entry would have.
    last_case_part = sorted((path / "tables" / "cases").glob("part-*.parquet"))[-1]
    cut = load_run(path).table("cases").iloc[-1][["impl", "config_id"]].tolist()
    last_case_part.unlink()
    assert main(["collect", "--resume", str(path)]) == 0
    run = load_run(path)
    new = [p for p in parts() if p not in before]
    assert {p.parts[1] for p in new} == {"correctness", "timings", "launch", "determinism", "cases"}
    assert len(new) == 5  # one part per table for the one case
    cases = run.table("cases")
    assert len(cases) == len(get_suite("tiny")) * (len(STAGES) + 1)
    assert [cut] == cases.iloc[[-1]][["impl", "config_id"]].values.tolist()
    assert len(run.table("correctness")) == len(cases)  # the old rows of the redone case are superseded
    assert run.status == "complete" and len(run.meta["resumes"]) == 2
    assert all("wall_s" in r and "phases_s" in r for r in run.meta["resumes"])  # each resume's own time


def test_correctness_rows_carry_the_rounded_reference_figures(interpreted_run):
    """Issue 21: each checked case against the reference rounded to the output dtype (kernels.reference
    .rounding_error), filled by the interpreted collect and shown by the report; unchecked cases stay null."""
    from perfmodel.reports.correctness import correctness_table
    from perfmodel.reports.displays import correctness_display

    run = load_run(interpreted_run[1])
    df = run.table("correctness")
    ok = df[df["impl"] == "stage0_baseline"]
    assert (ok["max_ulp"] >= 0).all() and (ok["max_ulp"] == ok["max_ulp"].round()).all()
    assert ok["exact_frac"].between(0, 1, inclusive="right").all() and (ok["rms_ulp"] >= 0).all()
    others = df[df["impl"] != "stage0_baseline"]  # the Gluon stage and the peer: nothing compared, nothing filled
    assert others[["max_ulp", "exact_frac", "rms_ulp"]].isna().all().all()
    shown = correctness_display(correctness_table(run))
    measured = shown[shown["impl"] == "stage0_baseline"]
    assert not measured["exactly rounded"].isin(["not measured", "—"]).any()
    assert measured["exactly rounded"].str.fullmatch(r"\d+\.\d\d%").all()

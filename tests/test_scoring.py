"""`perfmodel model score`: error statistics checked by hand, the predictor registry, the bound's honesty (it never
sees a timing), the command on the committed runs and bench tables, and the rename of the old "analytic" model."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.cli import main
from perfmodel.model import bound, predictors, score_sources, scoring
from perfmodel.runs import bundled_run_dirs, load_run
from module_imports import imported_modules, names_used

ROOT = Path(__file__).resolve().parents[1]
H100_RUN = "20261124-173318-custom-nvidia-h100-80gb-hbm3"  # bundled, by id
COMMITTED_RUNS = [H100_RUN, *sorted(str(p.parent) for p in (ROOT / "runs").glob("*/run.json"))]
BENCH_TABLES = sorted(str(p) for p in [*(ROOT / "benchmarks").glob("*.csv"), *(ROOT / "benchmarks/h200").glob("*.csv")])


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ---- statistics by hand ---------------------------------------------------------------------------------------
def test_median_and_geomean_of_abs_errors_by_hand():
    errors = [0.1, -0.4, 0.2]
    assert scoring.median_abs(errors) == pytest.approx(0.2)
    assert scoring.geomean_abs(errors) == pytest.approx((0.1 * 0.4 * 0.2) ** (1 / 3))  # = 0.2
    assert scoring.median_abs([-0.5, 0.1, 0.3, -0.2]) == pytest.approx(0.25)  # even count: mean of the middle two
    assert scoring.geomean_abs([0.0, 0.5]) == 0.0  # an exact prediction makes the geometric mean 0
    assert math.isnan(scoring.median_abs([])) and math.isnan(scoring.geomean_abs([]))


def _cases(measured, predicted, **cols):
    n = len(measured)
    base = {"source": ["s"] * n, "gpu": ["h100-sxm"] * n, "config_id": ["c"] * n, "B": [1] * n, "H": [1] * n,
            "S": [128] * n, "D": [64] * n, "causal": [False] * n, "dtype": ["fp16"] * n, "stage": list(range(n)),
            "impl": list(bound.STAGE_IMPLS[:n]), "measured_ms": measured}
    base.update(cols)
    frame = pd.DataFrame(base)
    frame["p_ms"] = predicted
    frame["p_err"] = frame["p_ms"] / frame["measured_ms"] - 1
    return frame


def test_error_summary_by_hand():
    # errors: 1/2 - 1 = -0.5, 3/2 - 1 = +0.5, 1.8/2 - 1 = -0.1
    cases = _cases([2.0, 2.0, 2.0], [1.0, 3.0, 1.8], causal=[False, True, True])
    overall = scoring.error_summary(cases).iloc[0]
    assert overall["n"] == 3
    assert overall["p_median_abs"] == pytest.approx(0.5)
    assert overall["p_geomean_abs"] == pytest.approx((0.5 * 0.5 * 0.1) ** (1 / 3))
    assert overall["p_fast"] == pytest.approx(2 / 3)
    by = scoring.error_summary(cases, "causal").set_index("group")
    assert by.loc[False, "n"] == 1 and by.loc[False, "p_median_abs"] == pytest.approx(0.5)
    assert by.loc[True, "p_median_abs"] == pytest.approx(0.3) and by.loc[True, "p_fast"] == pytest.approx(0.5)


def test_gain_signs_by_hand():
    # measured: 0->1 gets slower (gain 2/4 - 1 = -0.5), 1->2 faster (4/2 - 1 = +1)
    # predicted: 0->1 no change (sign 0: wrong), 1->2 faster (right)
    cases = _cases([2.0, 4.0, 2.0], [1.0, 1.0, 0.5])
    gains = scoring.gain_cases(cases).set_index("transition")
    assert gains.loc["0->1", "measured_gain"] == pytest.approx(-0.5)
    assert gains.loc["0->1", "p_gain"] == pytest.approx(0.0)
    assert not gains.loc["0->1", "p_sign_right"]
    assert gains.loc["1->2", "p_gain"] == pytest.approx(1.0) and gains.loc["1->2", "p_sign_right"]
    summary = scoring.gain_summary(scoring.gain_cases(cases)).set_index("transition")
    assert summary.loc["all", "n"] == 2 and summary.loc["all", "p_sign_right"] == pytest.approx(0.5)
    # a missing stage breaks the chain: no 0->2 pair is made up
    assert list(scoring.gain_cases(cases[cases["stage"] != 1])["transition"]) == []


# ---- a second predictor is a registration, not an edit --------------------------------------------------------
def test_a_registered_predictor_adds_its_columns():
    source = score_sources.run_source(load_run(bundled_run_dirs()[0]))
    double = predictors.RegisteredPredictor("twice", lambda c, s, g: 2 * predictors._bound_ms(c, s, g).time_ms,
                                         "2 x the bound")
    result = scoring.score([source], {**predictors.PREDICTORS, "twice": double})
    assert {"twice_ms", "twice_err", "bound_ms"} <= set(result.cases.columns)
    assert (result.cases["twice_ms"] == 2 * result.cases["bound_ms"]).all()
    assert {"twice_median_abs", "twice_geomean_abs", "twice_fast"} <= set(result.errors["stage"].columns)
    assert "twice_sign_right" in result.gain_summary.columns
    assert list(predictors.PREDICTORS) == ["bound", "model"]  # the shipped registry: the bound and the model
    with pytest.raises(ValueError):
        predictors.register_predictor("bound", predictors._bound_ms, "again")


# ---- honesty: the bound never sees a timing --------------------------------------------------------------------
def test_bound_predictions_do_not_move_when_the_timings_do():
    source = score_sources.run_source(load_run(bundled_run_dirs()[0]))
    slower = dataclasses.replace(source, measurements=source.measurements.assign(
        time_ms=source.measurements["time_ms"] * 3.0))
    a, b = scoring.score_cases([source]), scoring.score_cases([slower])
    assert len(a) > 0
    pd.testing.assert_series_equal(a["bound_ms"], b["bound_ms"])
    assert not a["bound_err"].equals(b["bound_err"])  # the errors do move: the scorer did read the new timings


def test_bound_module_reads_only_the_workload_and_the_hardware_table():
    imported = imported_modules(bound.__file__)
    # no run store, no analysis, no pandas: nothing that could hand it a timings table
    assert imported <= {"__future__", "functools", "heapq", "math", "dataclasses", "kernels", "kernels.workload",
                        "kernels.hardware"}, imported
    names = names_used(bound.__file__)
    assert not {"timings", "time_ms_p20", "measured_ms", "table"} & names


def test_the_bound_constants_come_from_the_hardware_table():
    # every rate the bound divides by is a GpuSpec field: change the table and the bound follows exactly
    from kernels.hardware import get_gpu
    from kernels.suites import SEED

    h100 = get_gpu("h100-sxm")
    half = dataclasses.replace(h100, fp16_tflops=h100.fp16_tflops / 2, exp_tops=h100.exp_tops / 2,
                               hbm_tbps=h100.hbm_tbps / 2)
    for stage in range(len(bound.STAGE_IMPLS)):
        a, b = bound.predict_stage(SEED, stage, h100), bound.predict_stage(SEED, stage, half)
        assert b.compute_ms == pytest.approx(2 * a.compute_ms)


# ---- the command ----------------------------------------------------------------------------------------------
def test_score_committed_runs_and_bench_tables_table(capsys):
    rc, out, err = _run(capsys, "model", "score", *COMMITTED_RUNS, "--bench", *BENCH_TABLES)
    assert rc == 0 and err == ""
    for label in ("bound median", "bound geomean", "stage=0", "stage=5", "S=16384", "D=128", "causal=True",
                  "dtype=bf16", "B=1", "gpu=h200-sxm", "0->1", "4->5", "bound sign right"):
        assert label in out, label
    assert "analytic" not in out.lower() and "model median" in out and "model sign right" in out
    n = int(out.split(" measured stage times")[0])
    assert n >= 900  # 426 on the H100 and the H200's runs and tables


def test_score_bundled_runs_json(capsys):
    rc, out, _ = _run(capsys, "model", "score", "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    assert [p["name"] for p in doc["predictors"]] == ["bound", "model"]
    assert {s["name"] for s in doc["sources"]} == {d.name for d in bundled_run_dirs()}
    overall = doc["errors"]["all"][0]
    assert overall["n"] == len(doc["cases"]) > 0
    assert 0 < overall["bound_median_abs"] < 1 and 0 < overall["bound_geomean_abs"] < 1
    assert set(doc["errors"]) == {"all", *scoring.BREAKDOWNS}
    assert doc["gains"][-1]["transition"] == "all"
    # every case's error is its prediction against its measurement
    c = doc["cases"][0]
    assert c["bound_err"] == pytest.approx(c["bound_ms"] / c["measured_ms"] - 1)


def test_a_run_given_twice_counts_once(capsys):
    rc, out, _ = _run(capsys, "model", "score", "--format", "json", H100_RUN, str(bundled_run_dirs()[0]))
    assert rc == 0 and len(json.loads(out)["sources"]) == 1


@pytest.mark.parametrize("argv, needle", [
    (["nosuch-run"], "does not exist"),
    (["--bench", "nosuch.csv"], "does not exist"),
    (["--bench", "README.md"], "not a CSV"),
    (["--bench", "pyproject.toml"], None),
])
def test_bad_input_is_one_sentence_and_exit_2(capsys, argv, needle):
    rc, out, err = _run(capsys, "model", "score", *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    if needle:
        assert needle in err


def test_bench_table_without_the_columns(tmp_path, capsys):
    p = tmp_path / "t.csv"
    p.write_text("impl,time_ms\nstage0_baseline,1.0\n")
    rc, _, err = _run(capsys, "model", "score", "--bench", str(p))
    assert rc == 2 and "lacks the column(s)" in err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["model", "score", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--bench" in out and "bound" in out


# ---- the rename: "bound" where users look ----------------------------------------------------------------------
def test_no_analytic_model_left_where_users_look(capsys):
    rc, out, _ = _run(capsys, "predict", "--config", "B=16,H=16,S=2048,D=64,causal")
    assert rc == 0 and "bound" in out and "analytic" not in out and "first-principles" not in out
    rc, out, _ = _run(capsys, "model", "check")
    assert rc == 0 and "analytic" not in out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "analytic" not in readme and "perfmodel model score" in readme
    assert not (ROOT / "perfmodel" / "analytic.py").exists()


# ---- GPU time and host-bound cases (issue 23) ---------------------------------------------------------------------
def _bench_csv(tmp_path, rows) -> Path:
    base = {"gpu": "NVIDIA H200", "H": 16, "S": 2048, "D": 64, "causal": True, "dtype": "fp16", "status": "ok"}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    path = tmp_path / "bench.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_gpu_time_is_scored_against_the_predicted_gpu_time_and_host_bound_cases_are_apart(tmp_path):
    stub = {"stub": predictors.RegisteredPredictor(
        "stub", lambda c, s, g: predictors.Predicted(1.0, "chain", gpu_time_ms=0.8), "stub")}
    path = _bench_csv(tmp_path, [
        {"impl": "stage3_persistent", "B": 16, "time_ms": 0.8, "timing_method": "cuda_graph", "host_bound": False},
        {"impl": "stage3_persistent", "B": 8, "time_ms": 1.0, "timing_method": "host_loop", "host_bound": False},
        {"impl": "stage3_persistent", "B": 1, "time_ms": 0.2, "timing_method": "cuda_graph", "host_bound": True},
    ])
    result = scoring.score([score_sources.bench_source(path)], stub)
    assert list(result.cases["B"]) == [16, 8] and list(result.cases["stub_err"]) == [0.0, 0.0]
    assert list(result.host_bound["B"]) == [1]
    assert result.errors["all"].iloc[0]["n"] == 2


def test_tables_from_before_the_timing_method_are_host_loop_times(tmp_path):
    stub = {"stub": predictors.RegisteredPredictor(
        "stub", lambda c, s, g: predictors.Predicted(1.0, "chain", gpu_time_ms=0.8), "stub")}
    path = _bench_csv(tmp_path, [{"impl": "stage3_persistent", "B": 16, "time_ms": 1.0}])
    result = scoring.score([score_sources.bench_source(path)], stub)
    assert list(result.cases["timing_method"]) == ["host_loop"] and list(result.cases["stub_err"]) == [0.0]
    assert result.cases["host_bound"].isna().all() and not len(result.host_bound)


def test_the_model_on_sass_loops_is_scored_apart(capsys):
    # issue 25's experiment: the model's terms on the SASS math loops, never from stored predictions (made on PTX)
    assert main(["model", "score", "20261202-053909-seed-nvidia-h200", "--loops", "sass", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in doc["predictors"]] == ["bound", "model_sass"]
    assert doc["errors"]["all"][0]["model_sass_median_abs"] is not None

"""Out-of-sample predictions (issue 13, deliverable 4): `perfmodel collect` stores every predictor's time per stage
x config before it times anything (collectors/predictions_phase.py), and `perfmodel model score` scores a run with
them while the model's hash is today's, else computes them now and says so. The collect side end to end is in
tests/test_collect_interpret.py; these use SYNTHETIC runs and stub predictors (no compile)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from collectors import predictions_phase
from collectors.schema import TABLES
from collectors.store import RunWriter, load_run
from kernels.hardware import get_gpu
from kernels.workload import AttentionConfig
from perfmodel import predictive, scoring
from module_imports import imported_modules

GPU = "NVIDIA H100 80GB HBM3"
CFG = AttentionConfig(B=4, H=16, S=1024, D=64, causal=True, dtype="fp16")
STUB = {"bound": scoring.RegisteredPredictor("bound", lambda c, s, g: scoring.Predicted(0.25, "tensor"), "stub")}


def _run(root, stored_hash: str | None, name="synthetic-stored"):
    w = RunWriter(root / name, {"environment": {"gpu_name": GPU, "synthetic": True}, "suite": "custom",
                                "note": "SYNTHETIC test data made by tests/test_stored_predictions.py"})
    cfg = {"config_id": CFG.id, **CFG.as_dict()}
    if stored_hash is not None:
        w.append("predictions", [{"impl": "stage3_persistent", **cfg, "predictor": "bound", "gpu": "h100-sxm",
                                  "model_hash": stored_hash, "time_ms": 0.8, "binding": "chain", "status": "ok",
                                  "error": None, "predict_s": 0.0, "predicted_at": "2026-12-02T00:00:00+0000"}])
    w.append("timings", [{"impl": "stage3_persistent", **cfg, "status": "ok", "time_ms": 1.0, "tuned_config": ""}])
    w.finish("complete")
    return load_run(w.path)


def test_the_table_is_documented():
    cols = TABLES["predictions"]["columns"]
    assert TABLES["predictions"]["case"] and {"predictor", "gpu", "model_hash", "time_ms", "binding", "status",
                                              "error", "predicted_at"} <= set(cols)


def test_model_hash_moves_with_the_datasheet_figures():
    h100 = get_gpu("h100-sxm")
    assert predictive.model_hash(h100) == predictive.model_hash(h100)
    assert len(predictive.model_hash(h100)) == 12
    assert predictive.model_hash(h100) != predictive.model_hash(get_gpu("h200"))
    assert predictive.model_hash(h100) != predictive.model_hash(h100.with_measured({"hbm_tbps": 3.0}))


def test_stored_predictions_with_todays_hash_are_scored_out_of_sample(tmp_path):
    source = scoring.run_source(_run(tmp_path, scoring.todays_hash("h100-sxm")))
    assert source.predictions.startswith("stored, out of sample (hash ")
    case = scoring.score([source], STUB).cases.iloc[0]
    assert case["bound_from"] == "stored" and case["bound_ms"] == 0.8 and case["bound_binding"] == "chain"
    assert case["bound_err"] == pytest.approx(-0.2)


def test_a_stale_hash_or_no_table_means_computed_now(tmp_path):
    stale = scoring.run_source(_run(tmp_path, "000000000000"))
    assert stale.predictions.startswith("computed now (stored with hash 000000000000, today's is ")
    case = scoring.score([stale], STUB).cases.iloc[0]
    assert case["bound_from"] == "computed" and case["bound_ms"] == 0.25
    none = scoring.run_source(_run(tmp_path, None, name="synthetic-none"))
    assert none.predictions == "computed now (the run stores no predictions)"


def test_a_failing_predictor_gives_a_row_that_says_why():
    def broken(config, stage, gpu):
        raise RuntimeError("cannot compile\nmore lines")

    preds = {"broken": scoring.RegisteredPredictor("broken", broken, "x"),
             "nan": scoring.RegisteredPredictor("nan", lambda c, s, g: math.nan, "y")}
    old = dict(scoring.PREDICTORS)
    try:
        scoring.PREDICTORS.clear()
        scoring.PREDICTORS.update(preds)
        rows = scoring.prediction_rows(["stage2_reduced_sync", "sdpa_flash"], [CFG], get_gpu("h100-sxm"))
    finally:
        scoring.PREDICTORS.clear()
        scoring.PREDICTORS.update(old)
    assert [r["predictor"] for r in rows] == ["broken", "nan"]  # peers are not predicted
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "RuntimeError: cannot compile"
    assert rows[1]["status"] == "failed" and "could not predict" in rows[1]["error"]
    assert all(r["model_hash"] == scoring.todays_hash("h100-sxm") for r in rows)


def test_a_gpu_the_table_does_not_know_never_fails_the_run(tmp_path):
    w = RunWriter(tmp_path / "synthetic-unknown", {"environment": {"gpu_name": "Some GPU"}, "suite": "custom"})
    seconds = predictions_phase.write_predictions(w, ["stage0_baseline"], [CFG], "Some GPU",
                                                  scoring.prediction_rows)
    assert seconds >= 0
    meta = w.meta["predictions"]
    assert meta["status"] == "failed" and "Some GPU" in meta["error"]
    assert "predictions" not in load_run(w.path).tables()
    w.finish("complete")


def test_the_collector_imports_no_model_and_records_a_missing_predictor(tmp_path):
    # data flows one way (kernels -> collectors -> run store -> perfmodel): the perfmodel layer hands the collector
    # its predictor, and a collect started without one says so in run.json instead of writing rows
    for path in Path(predictions_phase.__file__).parent.glob("*.py"):
        modules = imported_modules(path)
        assert not any(m == "perfmodel" or m.startswith("perfmodel.") for m in modules), path
    w = RunWriter(tmp_path / "synthetic-no-predictor", {"environment": {"gpu_name": "NVIDIA H200"}})
    assert predictions_phase.write_predictions(w, ["stage0_baseline"], [CFG], "NVIDIA H200") == 0.0
    assert w.meta["predictions"]["status"] == "not_measured" and "no predictor" in w.meta["predictions"]["error"]
    w.finish("complete")

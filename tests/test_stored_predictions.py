"""Out-of-sample predictions (issue 13, deliverable 4): `perfmodel collect` stores every predictor's time per stage
x config before it times anything (collectors/sweep/predictions_phase.py), and `perfmodel model score` scores a run with
them while they carry today's model version (perfmodel.model.predictive.MODEL_VERSION; rows from before it carry a
hash of the model's sources, mapped to a version in LEGACY_MODEL_HASHES), else computes them now and says so. The collect side end to end is in
tests/test_collect_interpret.py; these use SYNTHETIC runs and stub predictors (no compile)."""

from __future__ import annotations

import math

import pytest

from collectors.sweep import predictions_phase
from kernels.hardware import get_gpu
from kernels.workload import AttentionConfig
from perfmodel.model import predictive, predictors, score_sources, scoring
from runstore.reader import load_run
from runstore.schema import TABLES
from runstore.writer import RunWriter

GPU = "NVIDIA H100 80GB HBM3"
CFG = AttentionConfig(B=4, H=16, S=1024, D=64, causal=True, dtype="fp16")
STUB = {"bound": predictors.RegisteredPredictor("bound", lambda c, s, g: predictors.Predicted(0.25, "tensor"), "stub")}


def _run(root, stored: dict | None, name="synthetic-stored"):
    w = RunWriter(root / name, {"environment": {"gpu_name": GPU, "synthetic": True}, "suite": "custom",
                                "note": "SYNTHETIC test data made by tests/test_stored_predictions.py"})
    cfg = {"config_id": CFG.id, **CFG.as_dict()}
    if stored is not None:
        w.append("predictions", [{"impl": "stage3_persistent", **cfg, "predictor": "bound", "gpu": "h100-sxm",
                                  **stored, "time_ms": 0.8, "binding": "chain", "status": "ok",
                                  "error": None, "predict_s": 0.0, "predicted_at": "2026-12-02T00:00:00+0000"}])
    w.append("timings", [{"impl": "stage3_persistent", **cfg, "status": "ok", "time_ms": 1.0, "tuned_config": ""}])
    w.finish("complete")
    return load_run(w.path)


def test_the_table_is_documented():
    cols = TABLES["predictions"]["columns"]
    assert TABLES["predictions"]["case"] and {"predictor", "gpu", "model_version", "inputs_hash", "model_hash",
                                              "time_ms", "binding", "status", "error", "predicted_at"} <= set(cols)


def test_the_inputs_hash_moves_with_what_the_prediction_read():
    h100 = get_gpu("h100-sxm")
    one = predictive.inputs_hash(CFG, 3, h100)
    assert one == predictive.inputs_hash(CFG, 3, h100) and len(one) == 12
    assert one != predictive.inputs_hash(CFG, 3, get_gpu("h200"))
    assert one != predictive.inputs_hash(CFG, 3, h100.with_measured({"hbm_tbps": 3.0}))
    assert one != predictive.inputs_hash(CFG, 2, h100)
    assert one != predictive.inputs_hash(CFG, 3, h100, host_launch_us=40.0)


def test_stored_predictions_of_todays_version_are_scored_out_of_sample(tmp_path):
    source = score_sources.run_source(_run(tmp_path, {"model_version": predictive.MODEL_VERSION}))
    assert source.predictions == f"stored, out of sample (model v{predictive.MODEL_VERSION})"
    case = scoring.score([source], STUB).cases.iloc[0]
    assert case["bound_from"] == "stored" and case["bound_ms"] == 0.8 and case["bound_binding"] == "chain"
    assert case["bound_err"] == pytest.approx(-0.2)


def test_a_legacy_hash_names_its_version_and_an_older_one_is_computed_now(tmp_path):
    # the legacy hash of run 20261202-060607, made by v3 at 466fdf8: v3's, never today's v4 out of sample
    assert predictive.MODEL_VERSION == 4, "give the case below a version today's is not"
    old = score_sources.run_source(_run(tmp_path, {"model_hash": "b0b6e06efb04"}))
    assert old.predictions == "computed now (stored by model v3; today's is v4)"
    assert scoring.score([old], STUB).cases.iloc[0]["bound_from"] == "computed"


def test_another_version_or_no_table_means_computed_now(tmp_path):
    # the legacy hash of run 20261202-053909, made by model v2 at 07d4ee7
    stale = score_sources.run_source(_run(tmp_path, {"model_hash": "ed5930b9c9cd"}))
    assert stale.predictions == f"computed now (stored by model v2; today's is v{predictive.MODEL_VERSION})"
    unknown = score_sources.run_source(_run(tmp_path, {"model_hash": "000000000000"}, name="synthetic-unknown-hash"))
    assert unknown.predictions.startswith("computed now (stored by an unknown model;")
    case = scoring.score([stale], STUB).cases.iloc[0]
    assert case["bound_from"] == "computed" and case["bound_ms"] == 0.25
    none = score_sources.run_source(_run(tmp_path, None, name="synthetic-none"))
    assert none.predictions == "computed now (the run stores no predictions)"


def test_a_failing_predictor_gives_a_row_that_says_why():
    def broken(config, stage, gpu):
        raise RuntimeError("cannot compile\nmore lines")

    preds = {"broken": predictors.RegisteredPredictor("broken", broken, "x"),
             "nan": predictors.RegisteredPredictor("nan", lambda c, s, g: math.nan, "y")}
    old = dict(predictors.PREDICTORS)
    try:
        predictors.PREDICTORS.clear()
        predictors.PREDICTORS.update(preds)
        rows = predictors.prediction_rows(["stage2_reduced_sync", "sdpa_flash"], [CFG], get_gpu("h100-sxm"))
    finally:
        predictors.PREDICTORS.clear()
        predictors.PREDICTORS.update(old)
    assert [r["predictor"] for r in rows] == ["broken", "nan"]  # peers are not predicted
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "RuntimeError: cannot compile"
    assert rows[1]["status"] == "failed" and "could not predict" in rows[1]["error"]
    assert all(r["model_version"] == predictive.MODEL_VERSION and r["inputs_hash"] is None for r in rows)


def test_a_gpu_the_table_does_not_know_never_fails_the_run(tmp_path):
    w = RunWriter(tmp_path / "synthetic-unknown", {"environment": {"gpu_name": "Some GPU"}, "suite": "custom"})
    seconds = predictions_phase.write_predictions(w, ["stage0_baseline"], [CFG], "Some GPU",
                                                  predictors.prediction_rows)
    assert seconds >= 0
    meta = w.meta["predictions"]
    assert meta["status"] == "failed" and "Some GPU" in meta["error"]
    assert "predictions" not in load_run(w.path).tables()
    w.finish("complete")


def test_the_collector_imports_no_model_and_records_a_missing_predictor(tmp_path):
    # data flows one way (kernels -> collectors -> run store -> perfmodel; tests/test_layout.py holds every module of
    # collectors to it): the perfmodel layer hands the collector its predictor, and a collect started without one
    # says so in run.json instead of writing rows
    w = RunWriter(tmp_path / "synthetic-no-predictor", {"environment": {"gpu_name": "NVIDIA H200"}})
    assert predictions_phase.write_predictions(w, ["stage0_baseline"], [CFG], "NVIDIA H200") == 0.0
    assert w.meta["predictions"]["status"] == "not_measured" and "no predictor" in w.meta["predictions"]["error"]
    w.finish("complete")

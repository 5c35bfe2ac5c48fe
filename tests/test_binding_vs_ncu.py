"""`perfmodel model score`'s binding term against Nsight Compute's busiest unit, on a SYNTHETIC run whose
ncu_metrics are made up so that each verdict is known by hand: a tensor-busy case, an XU-busy one, one where the
FMA pipe is busiest (the model's issue slots), one with no unit busy (latency), and a case ncu did not profile."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kernels.workload import AttentionConfig
from perfmodel.cli import main
from perfmodel.model import predictive, predictors, score_sources, scoring
from runstore.reader import load_run
from runstore.writer import RunWriter

GPU = "NVIDIA H100 80GB HBM3"
CONFIGS = [AttentionConfig(B=b, H=16, S=1024, D=64, causal=False, dtype="fp16") for b in (1, 2, 4, 8, 16)]
# per config (by B): the case's ncu utilizations (% of peak), and the binding term the stub predictor names
UNITS = {
    1: {"tensor_pipe_pct": 81.0, "xu_pipe_pct": 30.0, "issue_active_pct": 50.0, "dram_throughput_pct": 10.0},
    2: {"tensor_pipe_pct": 40.0, "xu_pipe_pct": 75.0, "issue_active_pct": 50.0, "dram_throughput_pct": 10.0},
    4: {"tensor_pipe_pct": 40.0, "fma_pipe_pct": 65.0, "issue_active_pct": 62.0, "dram_throughput_pct": 10.0},
    8: {"tensor_pipe_pct": 45.0, "xu_pipe_pct": 30.0, "issue_active_pct": 59.9, "dram_throughput_pct": 10.0},
    16: None,  # not profiled
}
BINDING = {1: "tensor", 2: "tensor", 4: "issue", 8: "chain", 16: "tensor"}
EXPECTED = {1: ("tensor", "tensor", 1.0), 2: ("mufu", "mufu", 0.0), 4: ("fma", "fma", 1.0),
            8: ("issue", "latency", 1.0)}


def _cfg(c):
    return {"config_id": c.id, **c.as_dict()}


def _synthetic_run(root):
    w = RunWriter(root / "synthetic-ncu-run", {"environment": {"gpu_name": GPU, "synthetic": True}, "suite": "custom",
                                              "note": "SYNTHETIC test data made by tests/test_binding_vs_ncu.py"})
    timings, ncu = [], []
    for c in CONFIGS:
        timings.append({"impl": "stage4_overlap", **_cfg(c), "status": "ok", "time_ms": 1.0, "tuned_config": ""})
        for i, (metrics, duration) in enumerate([({"tensor_pipe_pct": 1.0, "xu_pipe_pct": 99.0}, 1e3),  # a helper
                                                 (UNITS[c.B] or {}, 1e6)]):  # the attention kernel: the longest
            if UNITS[c.B] is None:
                break
            for m, v in {**metrics, "duration_ns": duration}.items():
                ncu.append({"impl": "stage4_overlap", **_cfg(c), "kernel": f"k{i}", "kernel_index": i, "metric": m,
                            "raw_metric": m, "source": "raw", "value": v, "unit": "%"})
    w.append("timings", timings)
    w.append("ncu_metrics", ncu)
    w.finish("complete")
    return w.path


def _stub(config, stage, gpu):
    return predictors.Predicted(0.5, BINDING[config.B])


@pytest.fixture()
def result(tmp_path):
    source = score_sources.run_source(load_run(_synthetic_run(tmp_path)))
    stub = predictors.RegisteredPredictor("stub", _stub, "a stub naming the binding terms of BINDING")
    return scoring.score([source], {"stub": stub})


def test_each_case_gets_ncus_verdict_from_its_longest_kernel(result):
    cases = result.cases.set_index("B")
    for b, (busiest, verdict, agree) in EXPECTED.items():
        assert cases.loc[b, "ncu_busiest"] == busiest and cases.loc[b, "ncu_bound"] == verdict, b
        assert scoring.agrees(cases.loc[b, "stub_binding"], cases.loc[b, "ncu_bound"]) == agree, b
    assert cases.loc[8, "ncu_busiest_pct"] == pytest.approx(59.9)  # just under BUSY_PCT: no unit busy
    assert pd.isna(cases.loc[16, "ncu_bound"]) and math.isnan(cases.loc[16, "ncu_busiest_pct"])


def test_agreement_overall_and_per_stage_by_hand(result):
    frame = result.binding.set_index("group")
    assert list(frame.index) == ["all", "stage=4"]
    assert frame.loc["all", "n"] == 4  # the unprofiled case is left out
    assert frame.loc["all", "stub_agree"] == pytest.approx(3 / 4)
    assert frame.loc["all", "ncu_bound"] == "fma:1 latency:1 mufu:1 tensor:1"
    assert frame.loc["all", "stub_terms"] == "chain:1 issue:1 tensor:2"


def test_every_model_term_maps_to_an_ncu_unit_or_latency():
    from perfmodel.model.predictive import ITERATION_TERMS

    assert set(ITERATION_TERMS) | {"hbm", "launch"} <= set(scoring.TERM_UNITS)
    assert set().union(*scoring.TERM_UNITS.values()) <= set(score_sources.NCU_UNITS) | {"latency"}
    assert scoring.agrees("chain", "latency") == 1.0 and scoring.agrees("hbm", "dram") == 1.0
    assert math.isnan(scoring.agrees(None, "tensor")) and math.isnan(scoring.agrees("tensor", None))


def test_score_prints_the_agreement_in_table_and_json(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.setattr(predictors, "PREDICTORS", {"stub": predictors.RegisteredPredictor("stub", _stub, "stub")})
    path = _synthetic_run(tmp_path)
    assert main(["model", "score", str(path)]) == 0
    out = capsys.readouterr().out
    assert "binding term against ncu's busiest unit, over the 4 cases profiled" in out
    assert "stub agrees" in out and "75%" in out
    assert main(["model", "score", str(path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["busy_pct"] == scoring.BUSY_PCT
    assert doc["model_version"] == predictive.MODEL_VERSION
    assert doc["sources"][0]["predictions"] == "computed now (the run stores no predictions)"
    assert doc["binding"][0]["group"] == "all" and doc["binding"][0]["stub_agree"] == pytest.approx(0.75)

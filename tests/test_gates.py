"""The plan's gates on runs: pass, fail, not_measured (never a pass) and report; `perfmodel gates` exit codes."""

from __future__ import annotations

import pytest

from kernels.suites import get_suite
from perfmodel.cli import main
from perfmodel.plan.gates import evaluate_gates, failed
from perfmodel.runs import load_run
from runstore.writer import RunWriter
from synthetic_run import make_run, synthetic_run_dir, timing_row  # noqa: F401 (fixture)


def _by_id(run_dir):
    return evaluate_gates(load_run(run_dir)).set_index("gate")


@pytest.fixture(scope="module")
def gates(synthetic_run_dir):
    return _by_id(synthetic_run_dir)


def test_every_gate_has_a_status_and_threshold(gates):
    assert set(gates.status) <= {"pass", "fail", "not_measured", "report"}
    assert gates.threshold.str.len().gt(0).all() and gates.detail.str.len().gt(0).all()


def test_correctness_and_max_error(gates):
    assert gates.loc["stage1_allclose", "status"] == "pass"
    assert gates.loc["stage1_max_err", "status"] == "pass"
    assert gates.loc["stage1_max_err", "measured"] == pytest.approx(1e-3)


def test_batching_gate_fails_with_its_figure(gates):
    row = gates.loc["stage3_batching"]
    assert row.status == "fail" and row.measured == pytest.approx(0.045 / 0.026)


def test_memory_stalls_at_stage4(gates):
    row = gates.loc["stage4_memory_stalls"]
    assert row.status == "pass" and row.measured == pytest.approx(2.0 / 10.0)  # long_scoreboard 2 of 10 cycles


def test_stage_tflops_targets(gates):
    assert gates.loc["stage5_tflops", "status"] == "pass"  # 362 TFLOP/s over the 210 floor
    assert gates.loc["stage3_tflops_b32", "status"] == "pass"  # from the batching table's B=32 row


def test_what_a_seed_run_cannot_decide_is_not_measured(gates):
    for gid in ("stage5_median_vs_fa3", "stage5_correctness_20_configs", "stretch_median_vs_fa3"):
        assert gates.loc[gid, "status"] == "not_measured", gid
        assert gates.loc[gid, "command"] == "perfmodel collect --suite fa3-grid", gid
    assert gates.loc["stage5_bitwise_1000", "command"] == "perfmodel collect --suite seed --determinism 1000"
    assert gates.loc["mvp_reproducibility", "status"] == "report"  # judged by a person, not "not measured"
    row = gates.loc["stage5_bitwise_1000"]
    assert row.status == "not_measured" and "1000" in row.detail  # 100 identical runs are not the plan's 1000
    assert gates.loc["stage2_minimal_barriers", "status"] == "report"
    assert gates.loc["stage2_minimal_barriers", "measured"] == 2


def test_bitwise_gate_passes_with_1000_runs(tmp_path):
    g = _by_id(make_run(tmp_path, determinism_runs=1000))
    assert g.loc["stage5_bitwise_1000", "status"] == "pass"


def test_allclose_failure_fails(tmp_path):
    g = _by_id(make_run(tmp_path, allclose=False))
    assert g.loc["stage1_allclose", "status"] == "fail"
    assert "false for 1 of 1" in g.loc["stage1_allclose", "detail"]


def test_median_vs_fa3_class_peer_over_the_suite(tmp_path):
    """24 fa3-grid configs, stage 5 at 1.10x cuDNN's TFLOP/s in each: median 1.10 -> pass required, fail stretch."""
    w = RunWriter(tmp_path / "grid", {"environment": {"gpu_name": "NVIDIA H100 80GB HBM3"}})
    rows = []
    for cfg in get_suite("fa3-grid"):
        rows += [timing_row("sdpa_cudnn", cfg, 1.10), timing_row("stage5_full", cfg, 1.0)]
    w.append("timings", rows)
    w.finish("complete")
    g = _by_id(tmp_path / "grid")
    assert g.loc["stage5_median_vs_fa3", "status"] == "pass"
    assert g.loc["stage5_median_vs_fa3", "measured"] == pytest.approx(1.10)
    assert g.loc["stretch_median_vs_fa3", "status"] == "fail"
    assert failed(evaluate_gates(load_run(tmp_path / "grid"))).empty  # a stretch failure is not a failure...
    assert not failed(evaluate_gates(load_run(tmp_path / "grid")), include_stretch=True).empty  # ...unless strict


def test_a_failed_stage_fails_no_crashes(tmp_path):
    from kernels.suites import SEED

    w = RunWriter(tmp_path / "crash", {"environment": {"gpu_name": "NVIDIA H100 80GB HBM3"}})
    w.append("timings", [dict(timing_row("stage1_warpspec", SEED, 1.0), status="failed", time_ms=None,
                              tflops=None, error="PassManager::run failed")])
    w.finish("partial")
    g = _by_id(tmp_path / "crash")
    assert g.loc["stage1_no_crashes", "status"] == "fail"
    assert "PassManager" in g.loc["stage1_no_crashes", "detail"]


@pytest.mark.parametrize("status, allclose, want", [("failed", None, "not_measured"), ("wrong", None, "fail"),
                                                     ("ok", False, "fail")])
def test_a_stage_that_did_not_run_has_no_allclose_to_judge(tmp_path, status, allclose, want):
    # the H100 run's stage 1 never ran (KernelUnsupported): its allclose gate said "fail" while max_err beside it
    # said there was no output to compare; a wrong output (or allclose false) still fails
    from kernels.suites import SEED

    w = RunWriter(tmp_path / status, {"environment": {"gpu_name": "NVIDIA H100 80GB HBM3"}})
    cfg = {"config_id": SEED.id, **SEED.as_dict()}
    error = "KernelUnsupported: causal attention is refused" if status == "failed" else None
    w.append("correctness", [{"impl": "stage1_warpspec", **cfg, "status": status, "doc_allclose": allclose,
                              "max_abs_err": None if status != "ok" else 1e-3, "error": error}])
    w.finish("partial")
    g = _by_id(tmp_path / status).loc["stage1_allclose"]
    assert g.status == want
    if want == "not_measured":
        assert "stage1_warpspec failed at B16-H16-S2048-D64-causal-fp16, so there is no output to judge" in g.detail
        assert g.command  # and how to measure it


def test_the_bundled_h100_runs_stage1_gates_agree():
    from perfmodel.runs import resolve_run_dirs

    g = _by_id(resolve_run_dirs(["20261124-173318-custom-nvidia-h100-80gb-hbm3"])[0])
    assert g.loc["stage1_no_crashes", "status"] == "fail"  # it crashed: that gate says so
    assert g.loc["stage1_allclose", "status"] == g.loc["stage1_max_err", "status"] == "not_measured"


def test_cli_exit_codes(synthetic_run_dir, tmp_path, capsys):
    assert main(["gates", str(synthetic_run_dir)]) == 1  # the batching gate fails
    out = capsys.readouterr()
    assert "stage3_batching" in out.out and "failing: stage3_batching" in out.err
    partial = str(make_run(tmp_path, batching_rows=False))
    assert main(["gates", partial, "--format", "md"]) == 3  # nothing fails, but the batching gate is not measured
    out = capsys.readouterr()
    assert "| gate |" in out.out and "stage3_batching                perfmodel collect --suite batching" in out.err
    assert main(["gates", partial, "--allow-missing"]) == 0
    capsys.readouterr()
    assert main(["gates", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err

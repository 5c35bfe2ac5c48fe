"""How a run's times were measured, as the report says it (issue 23, perfmodel/reports/timing_view.py): the method per
case (CUDA graph or host loop, with the reason a call fell back), host-bound cases, and the agreement of the times
with Nsight Compute's gpu__time_duration. SYNTHETIC runs written with the store's writer."""

from __future__ import annotations

import pytest

from kernels.suites import SEED
from perfmodel.reports.timing_view import case_methods, ncu_agreement, timing_lines
from perfmodel.runs import bundled_run_dirs, load_run
from runstore.writer import RunWriter
from synthetic_run import make_run, timing_row


def _run(tmp_path):
    w = RunWriter(tmp_path / "synthetic-graph", {"environment": {"gpu_name": "NVIDIA H200", "synthetic": True},
                                                 "note": "SYNTHETIC test data made by tests/test_timing_view.py"})
    rows = [
        {**timing_row("stage5_full", SEED, 0.30), "timing_method": "cuda_graph", "graph_calls": 8,
         "host_loop_ms": 0.31, "host_launch_us": 15.0, "host_bound": False},
        {**timing_row("sdpa_cudnn", SEED, 0.29), "timing_method": "host_loop", "host_loop_ms": 0.29,
         "graph_fallback": "not captured in a CUDA graph (RuntimeError: sync); timed by the host loop",
         "host_launch_us": 40.0, "host_bound": False},
        {**timing_row("stage1_warpspec", SEED.with_(B=1), 0.02), "timing_method": "cuda_graph",
         "host_loop_ms": 0.09, "host_launch_us": 60.0, "host_bound": True},
    ]
    w.append("timings", rows)
    w.append("ncu_metrics", [{"impl": "stage5_full", "config_id": SEED.id, **SEED.as_dict(), "kernel": "k",
                              "kernel_index": i, "metric": "duration_ns", "raw_metric": "gpu__time_duration.sum",
                              "value": v, "unit": "ns"} for i, v in enumerate((0.2e6, 0.094e6))])
    w.finish("complete")
    return load_run(w.path)


def test_the_method_host_bound_and_ncu_agreement_per_case(tmp_path):
    run = _run(tmp_path)
    cases = case_methods(run).set_index("impl")
    assert cases.loc["stage5_full", "timing_method"] == "cuda_graph"
    assert bool(cases.loc["stage1_warpspec", "host_bound"]) and not bool(cases.loc["stage5_full", "host_bound"])
    agree = ncu_agreement(run)
    assert list(agree["impl"]) == ["stage5_full"]
    assert agree.iloc[0]["ratio"] == pytest.approx(0.30 / 0.294)  # the two kernels of one call summed
    text = "\n".join(timing_lines(run))
    assert "GPU time (CUDA graph) for 2, host loop for 1 of 3 cases." in text
    assert "sdpa_cudnn at B16-H16-S2048-D64-causal-fp16: not captured in a CUDA graph" in text
    assert "host-bound (the host launch path is at least the GPU time): 1 case(s), stage1_warpspec" in text
    assert "GPU time (CUDA graph) against Nsight Compute's gpu__time_duration: median ratio 1.020 over 1" in text


def test_runs_of_schema_version_1_say_every_time_is_the_host_loops(tmp_path):
    run = load_run(make_run(tmp_path))  # no timing_method column: made as before it existed
    assert set(case_methods(run)["timing_method"]) == {"host_loop"}
    h100 = next(d for d in bundled_run_dirs() if "h100" in d.name)
    lines = timing_lines(load_run(h100))
    assert "every time is the host loop's" in lines[0]
    assert any(line.startswith("host-bound") and "B1-H16-S2048" in line for line in lines)  # from its launch table


def test_a_gate_built_from_times_names_their_method(tmp_path):
    """Issue 23: the gates say which timing method gave each figure they read from the timings table."""
    from perfmodel.plan.gates import evaluate_gates
    from perfmodel.reports.timing_view import method_phrase

    run = _run(tmp_path)
    assert method_phrase([run], {"stage5_full"}, {SEED.id}) == "timed by GPU time (CUDA graph)"
    assert method_phrase([run], {"stage5_full", "sdpa_cudnn"}, {SEED.id}) == \
        "timed by GPU time (CUDA graph) for 1 of 2 cases, host loop for 1 of 2 cases"
    assert method_phrase([run], {"stage1_warpspec"}, {SEED.with_(B=1).id}).endswith(
        "1 of 1 host-bound (the host launch path is at least the GPU time)")
    assert method_phrase([run], {"stage0_baseline"}, {SEED.id}) == ""
    gates = evaluate_gates(run).set_index("gate")
    assert gates.loc["stage5_tflops", "detail"].endswith("(timed by GPU time (CUDA graph))")
    bundled = evaluate_gates(load_run(next(d for d in bundled_run_dirs() if "h100" in d.name))).set_index("gate")
    assert "(timed by host loop" in bundled.loc["stage4_tflops", "detail"]

"""A small SYNTHETIC run folder for the analysis, report and dashboard tests (never shipped, never shown as real).

The figures below are made up so that hand-computed answers are easy (round times, simple stall shares); they
follow the run-store schema (runstore/schema.py) and are written with the store's own writer. When a real
H100 run is bundled, tests that check figures against hand computation should read that run instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernels.suites import SEED
from kernels.workload import AttentionConfig
from runstore.writer import RunWriter

GPU = "NVIDIA H100 80GB HBM3"
STAGES = ["stage0_baseline", "stage1_warpspec", "stage2_reduced_sync", "stage3_persistent", "stage4_overlap",
          "stage5_full"]
SECOND = AttentionConfig(B=8, H=16, S=1024, D=128, causal=False, dtype="fp16")
# Median times (ms) per impl at the seed config: stage k is a little faster than k-1.
SEED_TIME_MS = {"stage0_baseline": 0.50, "stage1_warpspec": 0.50, "stage2_reduced_sync": 0.48,
                "stage3_persistent": 0.45, "stage4_overlap": 0.40, "stage5_full": 0.38,
                "sdpa_cudnn": 0.36, "sdpa_flash": 0.52}
# Stall cycles per issued instruction per impl at the seed config (reason -> cycles).
STALLS = {
    "stage0_baseline": {"long_scoreboard": 4.0, "barrier": 2.0, "branch_resolving": 0.5, "math_pipe_throttle": 2.5,
                        "selected": 1.0},
    "stage1_warpspec": {"long_scoreboard": 4.0, "barrier": 2.0, "membar": 0.5, "math_pipe_throttle": 2.5,
                        "selected": 1.0},
    "stage2_reduced_sync": {"long_scoreboard": 4.0, "barrier": 1.0, "math_pipe_throttle": 4.0, "selected": 1.0},
    "stage3_persistent": {"long_scoreboard": 3.0, "barrier": 1.0, "math_pipe_throttle": 5.0, "selected": 1.0},
    "stage4_overlap": {"long_scoreboard": 2.0, "barrier": 1.0, "math_pipe_throttle": 6.0, "selected": 1.0},
    "stage5_full": {"long_scoreboard": 2.0, "barrier": 1.0, "math_pipe_throttle": 6.0, "selected": 1.0},
}


def _cfg(c: AttentionConfig) -> dict:
    return {"config_id": c.id, **c.as_dict()}


def timing_row(impl: str, c: AttentionConfig, time_ms: float, spread: float = 0.01) -> dict:
    return {"impl": impl, **_cfg(c), "status": "ok", "time_ms": time_ms, "time_ms_p20": time_ms * (1 - spread / 2),
            "time_ms_p80": time_ms * (1 + spread / 2), "spread_pct": spread * 100, "stable": spread < 0.02,
            "n_reps": 100, "tflops": c.tflops_at(time_ms), "bare_time_ms": None, "tuned_config": "", "error": None}


def make_run(root: Path, name: str = "synthetic-test-run", scale: float = 1.0, determinism_runs: int = 100,
             batching_rows: bool = True, allclose: bool = True, rounded: bool = False) -> Path:
    """Write the synthetic run under root/name and return its folder. `scale` multiplies every time (to make a
    second run that is uniformly slower or faster); `batching_rows=False` leaves the batching table out;
    `allclose=False` makes every case fail the document's allclose check; `rounded=True` gives the correctness
    rows figures against the rounded reference (max_ulp 1 or 3, exact_frac 0.99 or 0.75), as runs made since
    they exist have (without: none, as older runs)."""
    run_dir = Path(root) / name
    w = RunWriter(run_dir, {"environment": {"gpu_name": GPU, "sm_count": 132, "synthetic": True},
                            "suite": "seed", "note": "SYNTHETIC test data made by tests/synthetic_run.py"})
    configs = [SEED, SECOND]
    timings, correctness, stalls, ncu, launch, census, determinism = [], [], [], [], [], [], []
    for c in configs:
        for impl, t in SEED_TIME_MS.items():
            # the second config is ~1.5x the seed's FLOPs per ms for every impl
            t_ms = (t if c == SEED else t * SECOND.flops / SEED.flops / 1.5) * scale
            timings.append(timing_row(impl, c, t_ms))
            correctness.append({"impl": impl, **_cfg(c), "status": "ok", "max_abs_err": 1e-3, "max_rel_err": 2e-4,
                                "rel_l2_err": 1e-4, "budget_abs_err": 2e-3, "within_budget": True,
                                "doc_allclose": allclose, "doc_max_err_ok": True, "error": None})
            if rounded:  # stage5_full a little less accurate than the others
                worse = impl == "stage5_full"
                correctness[-1].update(max_ulp=3.0 if worse else 1.0, exact_frac=0.75 if worse else 0.99,
                                       rms_ulp=0.9 if worse else 0.1)
    for impl, reasons in STALLS.items():
        for reason, cpi in reasons.items():
            stalls.append({"impl": impl, **_cfg(SEED), "kernel": f"_attn_fwd_{impl}", "kernel_index": 0,
                           "reason": reason, "cycles_per_issue": cpi, "fraction": cpi / sum(reasons.values())})
        for metric, value in {"duration_ns": SEED_TIME_MS[impl] * 1e6, "waves_per_sm": 3.5,
                              "branch_uniformity_pct": 100.0 if impl != "stage0_baseline" else 95.0,
                              "dram_throughput_pct": 20.0, "dram_read_bytes": 3.0e7, "dram_write_bytes": 1.0e7,
                              "tensor_gmma_pipe_pct": 40.0 + 5 * STAGES.index(impl)}.items():
            ncu.append({"impl": impl, **_cfg(SEED), "kernel": f"_attn_fwd_{impl}", "kernel_index": 0,
                        "metric": metric, "raw_metric": metric, "value": value, "unit": ""})
        launch.append({"impl": impl, **_cfg(SEED), "host_launch_us": 20.0, "time_ms": SEED_TIME_MS[impl],
                       "launch_share": 20.0 / (SEED_TIME_MS[impl] * 1000)})
        census.append({"impl": impl, **_cfg(SEED), "wgmma": 22, "bar_sync": 4 if STAGES.index(impl) < 2 else 2,
                       "mbarrier": 0, "tma": 0, "ex2": 68, "num_warps": 4, "registers": 200, "spills_bytes": 0,
                       "shared_bytes": 65536, "grid_programs": SEED.tiles(128)})
        determinism.append({"impl": impl, **_cfg(SEED), "n_runs": determinism_runs,
                            "n_identical": determinism_runs, "bitwise_identical": True})
    batching = []
    for impl, per_seq in (("stage3_persistent", {1: 0.045, 8: 0.030, 32: 0.026}),
                          ("sdpa_cudnn", {1: 0.040, 8: 0.024, 32: 0.022})) if batching_rows else ():
        for B, ps in per_seq.items():
            c = SEED.with_(B=B)
            batching.append({"impl": impl, **_cfg(c), "time_ms": ps * B * scale, "per_seq_ms": ps * scale,
                             "speedup_vs_b1": per_seq[1] / ps})
    ceilings = [{"name": "fp16_mma_tflops", "value": 700.0, "unit": "TFLOP/s", "how": "synthetic"},
                {"name": "hbm_tbps", "value": 3.0, "unit": "TB/s", "how": "synthetic"},
                {"name": "exp2_tops", "value": 4.16, "unit": "T/s", "how": "synthetic"}]
    for table, rows in (("timings", timings), ("correctness", correctness), ("stalls", stalls),
                        ("ncu_metrics", ncu), ("launch", launch), ("census", census),
                        ("determinism", determinism), ("batching", batching), ("ceilings", ceilings)):
        w.append(table, rows)
    w.finish("complete")
    return run_dir


@pytest.fixture(scope="module")
def synthetic_run_dir(tmp_path_factory) -> Path:
    """The synthetic run, written once per test module."""
    return make_run(tmp_path_factory.mktemp("runs"))

"""What one run's report holds, computed once: every table of every section (`collect` -> `ReportData`), each
section's one-sentence introduction and title, the header lines that say which run, GPU, software and kernel code
the figures are of (`meta_lines`), and the banners that qualify the whole report. The report's formats
(perfmodel/reports/markdown.py, html.py) and the dashboard's overview read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from perfmodel.model import model_cases
from perfmodel.plan.constraint_map import mapping_rows
from perfmodel.plan.gates import evaluate_gates
from perfmodel.reports import ablation, analysis, compare, gpu_state, limits, timeline_view, timing_view
from perfmodel.reports.correctness import correctness_table
from perfmodel.runs import Run, gpu_name, kernel_code


SECTION_INTRO = {
    "gates": "The plan's success gates checked against this run: pass, fail, not measured (with the reason), "
             "or report (no number to check).",
    "headlines": "The verdicts in one line each: best stage against the best peer, and each constraint's "
                 "measured gain against its claim.",
    "stages": "Measured TFLOP/s of each stage beside the plan's target band, the plan's gains applied to the "
              "measured baseline, each stage's bound (speed of light), the predictive model's time (from the "
              "stage's compiled code, never a timing; its terms stacked, its binding term named) and the roofline, "
              "with each prediction's error.",
    "constraints": "For each of the plan's four constraints: the gain it claims, the gain its technique is worth "
                   "by ablation (with its 95% interval), the gain measured when the stage that removes it lands, "
                   "and the most the counters say removing it could buy (Amdahl, from one Nsight Compute pass: "
                   "no interval). " + ablation.FAIR_MEASURE,
    "stalls": "Where the warps' cycles go: Nsight Compute's stall reasons as shares of all stall cycles, per "
              "implementation (stages and peers), from one profiling pass per case, so without an interval.",
    "timeline": "Inside the kernel, from Proton's intra-kernel timeline of one instrumented launch per Gluon stage "
                "and config: a Gantt chart of a few work items of one SM (one lane per warp group), then what each "
                "technique changed inside, stages side by side: each partition's busy and waiting share, the K/V "
                "loads hidden before a consumer needed them and under wgmma, one consumer's softmax under the "
                "other's wgmma (ping-pong), the cycles per key block by phase, each with its p20–p80 spread, and "
                "the instrumentation's cost (a timeline more than 10% slower than the bare kernel is refused, with "
                "its reason).",
    "roofline": "How close each kernel runs to the nearest ceiling: tensor cores, the exponential unit "
                "(as FLOP-equivalent) or memory bandwidth at its arithmetic intensity (the one Nsight Compute "
                "measured where the run has counters, else the nominal one).",
    "batching": "Per-sequence latency as the batch grows, against the plan's gate of a 5× speed-up from B=1 "
                "to B=32.",
    "correctness": "Each case's output against the float64 reference: its largest error, the error budget (2× "
                   "PyTorch's own low-precision error at the same inputs), their ratio, and the plan's two checks "
                   "(allclose with rtol 1e-3 and atol 2e-3; max error ≤ 0.06). Only a case within budget is timed. "
                   "The largest error is set by the output's rounding and is alike for every correct "
                   "implementation, so each output is also measured against the reference rounded to the output "
                   "dtype: the most units in the last place (ULPs) apart, the share of elements exactly rounded, "
                   "and the RMS distance in ULPs; these move when a kernel gives up accuracy (an approximate "
                   "exponential, a coarser P). Runs made before they were recorded show them as not measured.",
    "comparison": "This run against the baseline run, case by case: the change in median kernel time, a regression "
                  "only when this run's interval lies wholly above the baseline's (95% CIs when both runs kept "
                  "samples, else p20–p80) and the slowdown exceeds the threshold (perfmodel compare's). Runs of "
                  "different GPU models get no verdict (\"different GPU\"): the change is the hardware's as much "
                  "as the code's.",
}


TITLES = {"gates": "Gates", "headlines": "Headlines", "stages": "Stages: predicted vs measured",
          "constraints": "Constraints", "stalls": "Stall reasons", "timeline": "Inside the kernel",
          "roofline": "Roofline", "batching": "Batching",
          "correctness": "Correctness against the float64 reference", "comparison": "Comparison with the baseline run"}


@dataclass
class ReportData:
    """Every table the report (and the dashboard's overview) shows, computed once."""

    run: Run
    gates: pd.DataFrame
    stages: pd.DataFrame
    peers: pd.DataFrame
    constraints: pd.DataFrame
    stalls: pd.DataFrame
    roofline: pd.DataFrame
    batching: pd.DataFrame
    batching_summary: pd.DataFrame
    headlines: list[str]
    baseline: Run | None = None
    comparison: pd.DataFrame | None = None
    mapping: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(mapping_rows()))
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.reports.ablation.constraint_evidence
    stall_shift: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.reports.ablation.stall_shift
    regressions: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.reports.ablation.stage_regressions
    correctness: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.reports.correctness.correctness_table
    model: pd.DataFrame | None = None  # perfmodel.model.model_cases.model_table (None: not computed, e.g. --no-model)
    timeline: object = None  # perfmodel.reports.timeline_view.TimelineData (None: the run has no timeline)


def collect(run: Run, baseline: Run | None = None, model=None, predictive: bool = True) -> ReportData:
    """Every table of the report. `model`: an Einstein model (the shipped one when None). `predictive`: also
    predict each measured stage with the predictive model (model_cases.model_table: it compiles every stage kernel
    once per process, seconds each the first time)."""
    model = analysis._model(model)
    # measured times carry their intervals (perfmodel.reports.compare): the tables show them, the figures draw them
    stages = gpu_state.with_gpu_state(compare.with_timing_intervals(analysis.stage_table(run, model), run), run)
    peers = gpu_state.with_gpu_state(compare.with_timing_intervals(analysis.peer_table(run, model), run), run)
    constraints = limits.constraint_table(run, model)
    evidence = ablation.constraint_evidence(run, model, chain=constraints)
    return ReportData(
        run=run, gates=evaluate_gates(run, model), stages=stages, peers=peers, constraints=constraints,
        stalls=limits.stall_table(run, model),
        roofline=compare.with_timing_intervals(limits.roofline_table(run, model), run),
        batching=compare.with_speedup_intervals(analysis.batching_table(run), run),
        batching_summary=analysis.batching_summary(run), correctness=correctness_table(run, model),
        headlines=analysis.headlines(stages, peers, constraints, evidence), baseline=baseline,
        comparison=compare.compare_runs(run, baseline) if baseline is not None else None,
        evidence=evidence, stall_shift=ablation.stall_shift(run, model),
        regressions=ablation.stage_regressions(run, model),
        model=model_cases.model_table(run, stages) if predictive else None,
        timeline=timeline_view.timeline_data(run, list(dict.fromkeys(stages["config_id"]))),
    )


# run.json `environment` key (collectors/sweep/env.py) -> header label, in header order
_ENV_LINES = (("driver_version", "driver"), ("cuda_version", "CUDA"), ("torch_version", "torch"),
              ("triton_version", "triton"), ("cudnn_version", "cuDNN"), ("ncu_version", "ncu"),
              ("git_commit", "commit"))


def meta_lines(run: Run) -> list[tuple[str, str]]:
    env = run.environment
    lines = [("run", run.run_id), ("GPU", gpu_name(run) or "none (no GPU in this run)"),
             ("status", run.status), ("created", str(run.meta.get("created", "—"))),
             ("suite", str(run.meta.get("suite", "—")))]
    for key, label in _ENV_LINES:  # a run made before a field was recorded lacks it: skipped, never filled in
        value = env.get(key)
        if value is None or value == "":
            continue
        if key == "git_commit" and env.get("git_dirty") is True:
            value = f"{value} (with uncommitted changes)"
        lines.append((label, str(value)))
    if run.meta.get("note"):
        lines.append(("note", str(run.meta["note"])))
    throttled = gpu_state.run_throttled_line(run)
    if throttled:
        lines.append(("throttled", throttled))
    kernels = kernel_code(run).line  # '' when the run measured the installed kernel code
    if kernels:
        lines.append(("kernels", kernels))
    lines += [("timing", line) for line in timing_view.timing_lines(run)]
    return lines


def banners(data: "ReportData") -> list[str]:
    """Sentences that qualify the whole report, shown above everything: a table the run (or the baseline) lists
    and lacks (runstore.reader.Run.missing_tables_problem)."""
    return [p for r in (data.run, data.baseline) if r is not None for p in [r.missing_tables_problem()] if p]

"""The one mapping from short metric names to raw Nsight Compute metric names.

Everything outside this module (the ncu parser, the run tables, the models, the dashboard) uses the short
names; only the ncu command line and the readers' reverse lookup see the raw ones. Metric names are those of
Nsight Compute 2025.3 on sm_90 (ANCHORS.md, "Nsight Compute facts"; NVIDIA's Kernel Profiling Guide,
"Metrics Reference" and "Metrics Decoder"), each checked against the committed H100 reports
(tests/data/h100/profile.ncu-rep.gz and the seed run's: `ncu_report`'s `IAction.metric_names()` and
`IMetric.description()`) and against `ncu --query-metrics --chip gh100` (ncu 2025.3.1). Metrics that a given GPU
does not have are dropped from the command line by `collectors.ncu.profile.filter_available` after asking
`ncu --query-metrics`; run.json lists them per session (`metrics_dropped`) and collect prints them.

Naming of raw metrics: `<unit>__<counter>.<rollup>[.<submetric>]`. With `--csv --page raw` ncu adds the
`.avg/.max/.min/.sum` rollups to every base counter requested through `--metrics` unless the name already
carries one, so the names below always spell their rollup out.
"""

from __future__ import annotations

# Sections collected in the one ncu session (the ones that answer the plan's four constraints):
#   branching -> WarpStateStats (branch_resolving stalls) + branch uniformity below,
#   launch    -> LaunchStats, Occupancy,
#   sync      -> WarpStateStats (barrier, membar stalls), SchedulerStats,
#   memory    -> SpeedOfLight, MemoryWorkloadAnalysis, ComputeWorkloadAnalysis (pipe utilisation).
SECTIONS: tuple[str, ...] = (
    "SpeedOfLight",
    "WarpStateStats",
    "SchedulerStats",
    "Occupancy",
    "LaunchStats",
    "ComputeWorkloadAnalysis",
    "MemoryWorkloadAnalysis",
)

# Warp stall reasons reported by WarpStateStats on sm_90 (ANCHORS.md; `gmma` exists on Hopper only).
# Each is `smsp__average_warps_issue_stalled_<reason>_per_issue_active.ratio`: the average number of cycles a
# warp spent stalled for that reason per issued instruction; over all reasons they sum to
# "Warp Cycles Per Issued Instruction" (`smsp__average_warp_latency_per_inst_issued.ratio`).
STALL_REASONS: tuple[str, ...] = (
    "barrier",
    "branch_resolving",
    "dispatch_stall",
    "drain",
    "gmma",
    "imc_miss",
    "lg_throttle",
    "long_scoreboard",
    "math_pipe_throttle",
    "membar",
    "mio_throttle",
    "misc",
    "no_instruction",
    "not_selected",
    "selected",
    "short_scoreboard",
    "sleeping",
    "tex_throttle",
    "wait",
)

STALL_PREFIX = "smsp__average_warps_issue_stalled_"
STALL_SUFFIX = "_per_issue_active.ratio"


def stall_metric(reason: str) -> str:
    """Raw metric of one stall reason."""
    return f"{STALL_PREFIX}{reason}{STALL_SUFFIX}"


def stall_reason(raw_metric: str) -> str | None:
    """The stall reason a raw metric name stands for, or None when it is not a per-issue stall metric."""
    if raw_metric.startswith(STALL_PREFIX) and raw_metric.endswith(STALL_SUFFIX):
        reason = raw_metric[len(STALL_PREFIX):-len(STALL_SUFFIX)]
        return reason or None
    return None


# short name -> raw metric name. Units are those ncu prints with `--print-units base`.
METRICS: dict[str, str] = {
    # time and clocks
    "duration_ns": "gpu__time_duration.sum",
    "sm_clock_hz": "smsp__cycles_elapsed.avg.per_second",  # the SM clock actually seen (ANCHORS.md)
    "dram_clock_hz": "dram__cycles_elapsed.avg.per_second",
    "sm_cycles_elapsed": "sm__cycles_elapsed.max",
    # speed of light
    "sm_throughput_pct": "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "memory_throughput_pct": "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
    "dram_throughput_pct": "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "l2_throughput_pct": "lts__throughput.avg.pct_of_peak_sustained_elapsed",
    "l1_throughput_pct": "l1tex__throughput.avg.pct_of_peak_sustained_active",
    # memory traffic
    "dram_read_bytes": "dram__bytes_read.sum",
    "dram_write_bytes": "dram__bytes_write.sum",
    "l2_hit_rate_pct": "lts__t_sector_hit_rate.pct",
    # compute pipes: tensor cores. On Hopper the hmma cycle counter counts wgmma too: its description (in the
    # reports and `ncu --query-metrics --chip gh100`) is "# of cycles where tensor pipe was active
    # (HMMA/HFMA2.MMA/HGMMA/QGMMA ops)"; it is the Compute Workload Analysis' "Tensor (FP)" pipe, % of active cycles.
    "tensor_pipe_pct": "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
    # wgmma alone: the gh100 listing has no gmma *cycle* counter (the `sm__pipe_tensor_op_gmma_cycles_active` once
    # asked for here does not exist and was dropped); it has "# of warp instructions executed by tensor pipe
    # (HGMMA/QGMMA/IGMMA/BGMMA ops)", the Compute Workload Analysis' "Tensor (Warp Group)" pipe in its chart
    # "% of peak instructions executed". One wgmma keeps the pipe busy for many cycles, so this reads far below
    # tensor_pipe_pct: compare it across kernels, not with that.
    "tensor_gmma_pipe_pct": "sm__inst_executed_pipe_tensor_op_gmma.avg.pct_of_peak_sustained_active",
    "fma_pipe_pct": "sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active",
    "alu_pipe_pct": "sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active",
    "xu_pipe_pct": "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active",  # MUFU: ex2 runs here
    "issue_active_pct": "sm__inst_issued.avg.pct_of_peak_sustained_active",
    "ipc": "sm__inst_executed.avg.per_cycle_active",
    "instructions": "smsp__inst_executed.sum",
    # branching (constraint 1): 100% = every branch taken the same way by all active threads of a warp.
    # A kernel with no branches reads 0 here: treat as not applicable (ANCHORS.md).
    "branch_uniformity_pct": "smsp__sass_average_branch_targets_threads_uniform.pct",
    "branch_instructions": "smsp__sass_inst_executed_op_branch.sum",
    "divergent_branches": "smsp__sass_branch_targets_threads_divergent.sum",
    # scheduler and warps (constraints 3 and 4)
    "warp_cycles_per_issue": "smsp__average_warp_latency_per_inst_issued.ratio",
    "no_eligible_pct": "smsp__issue_inst0.avg.pct_of_peak_sustained_active",
    "eligible_warps_per_cycle": "smsp__warps_eligible.avg.per_cycle_active",
    "active_warps_per_scheduler": "smsp__warps_active.avg.per_cycle_active",
    # occupancy and launch (constraint 2)
    "achieved_occupancy_pct": "sm__warps_active.avg.pct_of_peak_sustained_active",
    "theoretical_occupancy_pct": "sm__maximum_warps_per_active_cycle_pct",  # from the Occupancy section
    "registers_per_thread": "launch__registers_per_thread",
    "dynamic_shared_mem_per_block_bytes": "launch__shared_mem_per_block_dynamic",
    "static_shared_mem_per_block_bytes": "launch__shared_mem_per_block_static",
    "block_size": "launch__block_size",
    "grid_size": "launch__grid_size",
    "waves_per_sm": "launch__waves_per_multiprocessor",
    "sm_count": "device__attribute_multiprocessor_count",
}
METRICS.update({f"stall_{reason}": stall_metric(reason) for reason in STALL_REASONS})

# Metrics of METRICS that a section of SECTIONS already reports, and which `ncu --query-metrics` does not list
# (it lists hardware counters, not what a section derives): asking for them with `--metrics` would only have them
# dropped as unknown. The Occupancy section's header carries this one as "Theoretical Occupancy" (both reports).
SECTION_METRICS: dict[str, str] = {
    "sm__maximum_warps_per_active_cycle_pct": "Occupancy",
}

# raw -> short, for the readers.
SHORT_NAMES: dict[str, str] = {raw: short for short, raw in METRICS.items()}


def short_name(raw_metric: str) -> str:
    """The short name of a raw metric, or the raw name itself when it has none."""
    return SHORT_NAMES.get(raw_metric, raw_metric)


def base_name(raw_metric: str) -> str:
    """The counter a raw metric is built on (what `ncu --query-metrics` lists): the part before the first dot."""
    return raw_metric.split(".", 1)[0]


def extra_metrics() -> list[str]:
    """The raw metrics requested with `--metrics` on top of SECTIONS: all of METRICS but SECTION_METRICS
    (sections may repeat some others)."""
    return [m for m in dict.fromkeys(METRICS.values()) if m not in SECTION_METRICS]

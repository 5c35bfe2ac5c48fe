"""The run store's tables: the one place their columns and units are written down.

Where the tables sit in a run folder, and run.json's format, is runstore/layout.py's docstring. The timeline tables
(Proton's intra-kernel scopes, their figures and each case's verdict) are written down in runstore/schema_timeline.py
and are part of `TABLES` like every other.

Every row of every table carries `run_id` and, where it is about a case, the implementation name (`impl`:
a stage name such as `stage0_baseline`, or a peer such as `sdpa_cudnn`) and the config (`config_id` plus its
`B, H, S, D, causal, dtype` columns), so that tables from different runs can be concatenated and filtered
without joins. Units are in the column names. A value that could not be measured is null (NaN / None) and the
row's `status` says why; nothing is ever filled in with a guess.

`status` values: `ok`; `failed` (the implementation raised; `error` holds the one-line reason); `wrong`
(ran, but failed the correctness check, so it was not timed); `unavailable` (the peer does not exist in this
environment, e.g. FlashAttention-3 not installed, or the implementation does not run the config's dtype, e.g. the
SDPA backends with fp8: kernels.registry.Impl.refusal, `error` says why; it was not called); `not_measured` (this run could not measure it, e.g. timings
under `--interpret`, counters with `--no-ncu`).
"""

from __future__ import annotations

from runstore.schema_timeline import TIMELINE_TABLES, TIMELINE_TEXT_COLUMNS

CONFIG_COLUMNS = ["config_id", "B", "H", "S", "D", "causal", "dtype"]
# ncu_metrics and stalls also hold the ceiling microbenchmarks profiled in the same session (impl `probe_exp2`,
# ...): their config_id is this and their B..dtype columns are null. Analyses of attention cases leave them out.
PROBE_CONFIG_ID = "probe"
CASE_KEY = ["run_id", "impl", *CONFIG_COLUMNS]
# The two columns that name a case inside one run (the rest of CASE_KEY is implied by config_id).
CASE_ID = ["impl", "config_id"]


def case_key(impl: str, config) -> dict:
    """The key columns of a case row but `run_id` (which the store fills in): impl, config_id, B, H, S, D, ..."""
    return {"impl": impl, "config_id": config.id, **config.as_dict()}


# table name -> {column: description with unit}. Columns listed in CASE_KEY are implied where `case` is True.
TABLES: dict[str, dict] = {
    "correctness": {
        "case": True,
        "doc": "Output of each implementation against the float64 reference (kernels/reference.py).",
        "columns": {
            "status": "ok | failed | wrong | unavailable (see the module docstring)",
            "max_abs_err": "max |out - ref| over all elements (same units as O)",
            "max_rel_err": "max |out - ref| / max |ref|",
            "rel_l2_err": "||out - ref||_2 / ||ref||_2",
            # against round(ref): the float64 reference correctly rounded to the output dtype (the inputs' dtype;
            # bf16 for fp8 inputs: kernels.reference.output_dtype), distances in that dtype's units in the last
            # place (kernels.reference.ulp_distance: steps between bit patterns, +0 = -0, NaN or a stray inf = inf);
            # a ULP is of each element's own size, so max_ulp is set where O is near zero; null in runs made before
            # they were measured (not measured)
            "max_ulp": "max ULPs of the output dtype between out and round(ref) (0 = exactly rounded everywhere)",
            "exact_frac": "fraction of elements with out == round(ref) (0..1)",
            "rms_ulp": "RMS over elements of the ULP distance between out and round(ref) (ULPs of the output dtype)",
            "budget_abs_err": "error budget: 2x the max abs error of PyTorch's own math in the same dtype",
            "within_budget": "max_abs_err <= budget_abs_err (bool)",
            "doc_allclose": "the document's check: torch.allclose(out, ref, rtol=1e-3, atol=2e-3) (bool)",
            "doc_max_err_ok": "the document's gate: max_abs_err <= 0.06 (bool)",
            "error": "one-line reason when status != ok",
        },
    },
    "timings": {
        "case": True,
        "doc": "Time of one call over rotated inputs (not served from L2): the GPU's, by CUDA-graph replay of "
               "back-to-back calls timed with CUDA events (collectors.timing.measure.time_graph), else, for a call "
               "that cannot be captured, triton.testing.do_bench's host loop (`timing_method` says which; runs of "
               "schema version 1 were all timed by the host loop); the host loop's time and the host launch path "
               "are kept beside it.",
        "columns": {
            "status": "ok | failed | wrong | unavailable | not_measured",
            "time_ms": "median time of one call (ms): the GPU's by CUDA graph, or the host loop's (timing_method)",
            "time_ms_p20": "20th percentile (ms)",
            "time_ms_p80": "80th percentile (ms)",
            "spread_pct": "(p80 - p20) / median x 100",
            "stable": "spread_pct < 2 (bool)",
            "n_reps": "timed repetitions",
            "time_ms_ci_low": "bootstrap 95% interval of the median, low end (ms; collectors/timing/stats.py, seeded; "
                              "null below 2 samples and in runs made before samples were kept)",
            "time_ms_ci_high": "bootstrap 95% interval of the median, high end (ms)",
            "ci_width_pct": "(time_ms_ci_high - time_ms_ci_low) / time_ms x 100",
            "wide_ci": "ci_width_pct > 2 (collectors.timing.measure.WIDE_CI_PCT): the median is not pinned down to the "
                       "regression threshold (bool)",
            "tflops": "flops / time (TFLOP/s), FLOPs by kernels.workload (causal halved)",
            "timing_method": "cuda_graph (time_ms is the GPU's time per call) | host_loop (do_bench from Python: "
                             "the call could not be captured; null in runs of schema version 1, all host loop)",
            "graph_calls": "back-to-back calls in the captured graph; a sample is one replay's time / graph_calls",
            "graph_fallback": "why the call was timed by the host loop and not by CUDA graph (null when it was)",
            "host_loop_ms": "median time of one call by do_bench's host loop over the same inputs (ms): where the "
                            "host's launch path is longer than the kernel, this measures the host",
            "host_loop_ms_ci_low": "bootstrap 95% interval of host_loop_ms, low end (ms)",
            "host_loop_ms_ci_high": "bootstrap 95% interval of host_loop_ms, high end (ms)",
            "host_launch_us": "median wall time of one Python call with the GPU busy elsewhere (us; the launch table's)",
            "host_bound": "host_launch_us >= time_ms x 1000: timed back to back from Python the GPU would wait for "
                          "the host (bool; null where the launch path was not measured)",
            "bare_time_ms": "median of a bare do_bench of the same call in the same process (ms), when measured",
            "overhead_pct": "(host_loop_ms - bare_time_ms) / bare_time_ms x 100: the collector's own overhead (runs "
                            "of schema version 1: time_ms against bare_time_ms, both host loop)",
            "n_inputs": "distinct input sets the timed repetitions rotated over (so none is served from L2)",
            "sm_clock_mhz": "median SM clock sampled while this case was timed (MHz; NVML or nvidia-smi)",
            "mem_clock_mhz": "median memory clock sampled while this case was timed (MHz)",
            # GPU state while the case was timed (collectors/timing/gpu_state.py, one sample every 0.5 s); null where
            # it could not be read, and in runs made before it was sampled
            "power_w": "median board power sampled while this case was timed (W; NVML or nvidia-smi power.draw)",
            "temperature_c": "highest GPU temperature sampled while this case was timed (degrees C)",
            "throttle_reasons": "clock-event reasons that held the clocks down while this case was timed, "
                                "comma-separated (collectors.timing.gpu_state.THROTTLE_REASONS: sw_power_cap, "
                                "hw_slowdown, sync_boost, sw_thermal, hw_thermal, hw_power_brake, board_limit, "
                                "reliability); '' when none; GPU idle, applications-clocks and display-clock settings "
                                "are not throttling and are left out",
            "throttled": "throttle_reasons is not empty: timed while the GPU held its clocks down (bool; null when "
                         "the reasons could not be read)",
            "tuned_config": "the config the autotuner chose (stage 5), else empty",
            # the tuner's fidelity step (kernels/tuner.py): its fastest candidates re-timed on rotated inputs, back to
            # back (kernels.workload.rotation_sets), before it chose; null where the case's config was not tuned in
            # this call's process by such a tuner (pinned, a peer, runs made before it existed)
            "tuner_warm_ms": "the chosen config's tuning time: do_bench median on one input set (ms)",
            "tuner_rotated_ms": "the chosen config's re-time on rotated input sets, GPU time per call (ms)",
            "tuner_retimed": "how many of the fastest candidates were re-timed on rotated inputs",
            "tuner_warm_pick": "the config the tuning timings alone would have chosen, where the re-timing chose "
                               "another ('' when it chose the same)",
            "tuner_warm_pick_rotated_ms": "that config's re-time on rotated input sets (ms; = tuner_rotated_ms when "
                                          "the pick did not change)",
            "error": "one-line reason when status != ok",
        },
    },
    "timing_samples": {
        "case": True,
        "doc": "Every timed repetition behind a `timings` row (and behind an `ablation_variants` row, under the "
               "variant's label as `impl`), in the order they were taken: what the median and its bootstrap "
               "interval were computed from. A repetition is one call of do_bench's host loop, or, for a time by "
               "CUDA graph (the row's timing_method), one replay of the graph's graph_calls calls. Only cases that "
               "were timed have rows.",
        "columns": {
            "sample_index": "repetition number within the case, from 0",
            "time_ms": "time of one call in that repetition (ms): a graph replay's time / its calls",
        },
    },
    "batching": {
        "case": True,
        "doc": "Per-sequence latency across batch sizes at one (H, S, D, causal, dtype).",
        "columns": {
            "status": "ok | not_measured (no ok timing at this B or at B=1)",
            "time_ms": "median kernel time at this B (ms)",
            "per_seq_ms": "time_ms / B (ms)",
            "speedup_vs_b1": "per_seq_ms at B=1 / per_seq_ms at this B (the document's batching efficiency)",
        },
    },
    "launch": {
        "case": True,
        "doc": "Host-side cost of launching the implementation once, and its share of the kernel time.",
        "columns": {
            "status": "ok | failed | wrong | unavailable | not_measured",
            "host_launch_us": "median wall time of the Python call with the GPU busy elsewhere (us)",
            "time_ms": "median kernel time (ms): the timings table's time_ms, by its timing_method",
            "timing_method": "how time_ms was measured (cuda_graph | host_loop; null in schema version 1: host loop)",
            "launch_share": "host_launch_us / (time_ms x 1000)",
            "host_bound": "launch_share >= 1: the host's launch path is at least the GPU's time (bool)",
            "error": "one-line reason when status != ok",
        },
    },
    "determinism": {
        "case": True,
        "doc": "N repeated runs on the same inputs compared bitwise with the first.",
        "columns": {
            "status": "ok | failed | wrong | unavailable | not_measured",
            "n_runs": "repetitions compared",
            "n_identical": "repetitions bitwise identical to the first",
            "bitwise_identical": "n_identical == n_runs (bool)",
            "error": "one-line reason when status != ok",
        },
    },
    "census": {
        "case": True,
        "doc": "Static counts of the compiled sm_90 code of each stage (collectors/census/census.py).",
        "columns": {
            "status": "ok | failed (the stage's launcher or Triton refused this stage at this config)",
            "error": "one-line reason when status != ok (e.g. stage 1's refusal of causal on the GPU)",
            "kernel_name": "the Triton kernel(s) the launcher launched and the census compiled (jit function names, "
                           "comma-separated; also when the compile failed; null in runs from before it)",
            "wgmma": "wgmma.mma_async instructions in the PTX",
            "bar_sync": "bar.sync / barrier.sync instructions in the PTX (whole kernel, static)",
            "loop_bar_sync": "most bar.sync / barrier.sync in one iteration of a math loop (an innermost loop "
                             "that issues wgmma: the key loop; static count of its body; null if none)",
            "loop_predicates": "most setp + selp (compares and selects: the masking) in one iteration of a math "
                               "loop (static count of its body; null if none)",
            "mbarrier": "mbarrier.* instructions in the PTX",
            "tma": "cp.async.bulk.tensor instructions in the PTX",
            "ex2": "ex2.approx instructions in the PTX",
            "num_warps": "warps per program as compiled (warp specialization adds some)",
            "registers": "registers per thread",
            "spills_bytes": "spill stores bytes",
            "shared_bytes": "static + dynamic shared memory per program (bytes)",
            "grid_programs": "programs the launcher would start for this config",
        },
    },
    "cases": {
        "case": True,
        "doc": "The sweep's log: one row per case once all its measurements are stored (what --resume skips).",
        "columns": {
            "status": "ok | failed | wrong | unavailable (the case's correctness status)",
            "error": "one-line reason when status != ok",
            "wall_s": "seconds this run spent on the case (s)",
            "finished": "when the case was stored (ISO 8601, local time)",
        },
    },
    "ceilings": {
        "case": False,
        "doc": "This GPU's ceilings measured in the same run; the models prefer them to datasheet figures. A run "
               "measured on several GPUs (perfmodel collect --devices, or shards merged by perfmodel merge) has one "
               "set per GPU; readers that want one value per name take the median over the GPUs' ok rows "
               "(collectors.sweep.merge.ceiling_values).",
        "columns": {
            "run_id": "run",
            "name": "fp16_mma_tflops | bf16_mma_tflops | hbm_tbps | exp2_tops | launch_us",
            "value": "measured value",
            "unit": "unit of value",
            "how": "what was run to measure it",
            "status": "ok | failed | not_measured",
            "error": "one-line reason when status != ok",
            "device_index": "the GPU's index on its host as nvidia-smi numbers it (null under --interpret and in runs "
                            "made before the column existed)",
            "gpu_uuid": "the GPU's UUID (GPU-...), which tells GPUs of different hosts apart; null where unknown",
        },
    },
    "ablation_variants": {
        "case": True,
        "doc": "Every kernel config the ablation ran for a stage that declares technique switches "
               "(collectors/sweep/ablation.py): checked against the reference, then timed like a case.",
        "columns": {
            "variant_id": "short stable id of the kernel config (collectors.sweep.ablation.variant_id)",
            "label": "<impl>#<variant_id>: the name its samples, counters and stalls are stored under",
            "variant": "the kernel config, as the stage reports it (e.g. 'BLOCK_M=128 ... loads=tma')",
            "role": "candidate (in the tuner's set) | flip (a one-switch flip of the timed config)",
            "tuned": "this is the config the sweep timed for the case (bool)",
            "status": "ok | wrong | failed | not_measured",
            "error": "one-line reason when status != ok",
            "max_abs_err": "max |out - ref| against the float64 reference",
            "budget_abs_err": "the case's error budget (2x PyTorch's own low-precision error)",
            "within_budget": "max_abs_err <= budget_abs_err (bool)",
            "max_ulp": "as in correctness: max ULPs between out and round(ref) (null in runs made before)",
            "exact_frac": "as in correctness: fraction of elements with out == round(ref)",
            "rms_ulp": "as in correctness: RMS ULP distance between out and round(ref)",
            "time_ms": "median time of one call (ms), when timed",
            "time_ms_p20": "20th percentile (ms)",
            "time_ms_p80": "80th percentile (ms)",
            "time_ms_ci_low": "bootstrap 95% interval of the median, low end (ms)",
            "time_ms_ci_high": "bootstrap 95% interval of the median, high end (ms)",
            "n_reps": "timed repetitions",
            "timing_method": "cuda_graph | host_loop (as in timings; null in schema version 1)",
            "graph_fallback": "why the variant was timed by the host loop (null when by CUDA graph)",
            "tflops": "flops / time_ms (TFLOP/s)",
            # plus one bool column per declared switch (e.g. use_tma, persistent): True where the technique is on
        },
    },
    "ablation": {
        "case": True,
        "doc": "What each technique switch is worth (collectors/sweep/ablation.py): per switch, `best` = fastest "
               "correct variant with it on vs fastest with it off over the same candidates, `flip` = the timed config "
               "vs the same with only this switch flipped. gain = off_time_ms / on_time_ms - 1.",
        "columns": {
            "switch": "the kernel config field (kernels.Switch.name)",
            "measure": "best | flip",
            "constraints": "plan constraint ids the technique removes, comma-separated (e.g. '4')",
            "technique": "what the switch turns on, one line",
            "status": "ok | not_measured | no_effect (a flip that cannot change this kernel)",
            "error": "why, when status != ok",
            "gain": "off_time_ms / on_time_ms - 1 (fraction; +0.15 = the technique makes it 15% faster)",
            "gain_ci_low": "bootstrap 95% interval of the gain, low end",
            "gain_ci_high": "bootstrap 95% interval of the gain, high end",
            "on_variant": "kernel config timed with the technique on",
            "off_variant": "kernel config timed with it off",
            "on_variant_id": "its variant_id",
            "off_variant_id": "its variant_id",
            "on_time_ms": "median time with the technique on (ms)",
            "off_time_ms": "median time with it off (ms)",
            "n_on": "best: correct candidates with the technique on",
            "n_off": "best: correct candidates with it off",
        },
    },
    "ncu_metrics": {
        "case": True,
        "doc": "Every Nsight Compute metric of every profiled kernel, tidy.",
        "columns": {
            "kernel": "kernel (function) name as ncu reports it",
            "kernel_index": "order of the kernel within the case's NVTX range",
            "metric": "short name (collectors/ncu/metrics.py) or the raw name when it has none",
            "raw_metric": "ncu metric name (details page: '<Section>: <Metric Name>')",
            "source": "raw (the --page raw export) | details (the --page details export)",
            "value": "numeric value (float)",
            "unit": "ncu unit string",
        },
    },
    "predictions": {
        "case": True,
        "doc": "Each stage's time as every registered predictor (perfmodel/model/predictors.py: bound, model) "
               "predicted it at the start of the collect, before anything was timed "
               "(collectors/sweep/predictions_phase.py), from the datasheet of `gpu`, with no measured ceiling, launch "
               "cost or tuned config; `perfmodel model score` scores them out of sample while model_version is "
               "today's. One row per stage x config x predictor.",
        "columns": {
            "predictor": "registered predictor name (bound | model)",
            "gpu": "hardware table key whose datasheet figures the prediction used (kernels/hardware.py)",
            "model_version": "perfmodel.model.predictive.MODEL_VERSION of the model (and bound) that made the "
                             "prediction (int); null in runs from before it, which carry model_hash",
            "inputs_hash": "perfmodel.model.predictive.inputs_hash: SHA-256 (12 hex digits) of what the prediction "
                           "read (config, stage, the GPU's figures and micro-benchmarks, the instruction mix, launch "
                           "facts); null when it failed",
            "model_hash": "runs from before model_version only: SHA-256 (12 hex digits) of the model's sources and the "
                          "GPU's figures; perfmodel.model.predictive.LEGACY_MODEL_HASHES says which model version it "
                          "was",
            "time_ms": "predicted time of one call timed back to back from Python (ms): the GPU's time and the host "
                       "launch it exposes; null when status != ok",
            "gpu_time_ms": "predicted GPU time of one call (ms), without the host launch: what a time by CUDA graph "
                           "is scored against; null when the predictor gives none, and in runs made before it",
            "binding": "the term that sets the time (tensor, mufu, issue, smem, chain, hbm, launch); null if none",
            "status": "ok | failed",
            "error": "one-line reason when status != ok",
            "predict_s": "seconds the prediction took (s; the model's include compiling the stage for sm_90)",
            "predicted_at": "when the prediction was made (ISO 8601, local time): before the run's first case",
        },
    },
    "stalls": {
        "case": True,
        "doc": "Warp stall reasons per profiled kernel (WarpStateStats).",
        "columns": {
            "kernel": "kernel name",
            "kernel_index": "order of the kernel within the case's NVTX range",
            "reason": "stall reason (long_scoreboard, barrier, ...)",
            "cycles_per_issue": "average warp cycles stalled for this reason per issued instruction",
            "fraction": "cycles_per_issue / sum over reasons (0..1)",
        },
    },
    **TIMELINE_TABLES,  # timeline, timeline_figures, timeline_cases: runstore/schema_timeline.py
}


# How a time was measured (timings.timing_method; collectors/timing/measure.py measures both).
TIMING_GRAPH = "cuda_graph"
TIMING_HOST_LOOP = "host_loop"
# What the times of a run of schema version 1 were measured by.
V1_TIMING_METHOD = TIMING_HOST_LOOP

# Columns that hold text; every other schema column holds numbers or booleans (units are in their names), and a
# Parquet part that stores one of those as text is refused (`runstore.reader.check_tables`).
TEXT_COLUMNS = frozenset({
    "run_id", "impl", "config_id", "dtype", "status", "error", "kernel", "metric", "raw_metric", "source", "unit",
    "reason", "name", "how", "tuned_config", "variant_id", "label", "variant", "role", "switch", "measure",
    "constraints", "technique", "on_variant", "off_variant", "on_variant_id", "off_variant_id", "finished",
    "throttle_reasons", "predictor", "gpu", "model_hash", "inputs_hash", "timing_method", "graph_fallback", "binding", "predicted_at", "gpu_uuid",
    "kernel_name",
}) | TIMELINE_TEXT_COLUMNS
# Tables whose parts may carry columns beyond the schema's (ablation_variants: one bool column per switch).
OPEN_TABLES = frozenset({"ablation_variants"})


def column_problem(table: str, names: list[str], types) -> str | None:
    """Why a Parquet part of `table` with these column names and (pyarrow) types cannot be read as that table,
    or None: a key column missing, a column renamed or misspelled, a column the table does not have (but in
    OPEN_TABLES), a number column holding text. `runstore.reader.check_tables` applies it to every part."""
    import difflib

    import pyarrow as pa

    schema_cols = columns(table)
    key = [c for c in ("impl", "config_id") if TABLES[table]["case"] and c not in names]
    unknown = [n for n in names if n not in schema_cols and not n.startswith("__")]
    for n in unknown:
        near = difflib.get_close_matches(n, [c for c in schema_cols if c not in names], n=1, cutoff=0.8)
        if near:
            return f"has a column {n!r} where the schema has {near[0]!r} (renamed or misspelled)"
    if key:
        return f"lacks the key column(s) {', '.join(key)}"
    if unknown and table not in OPEN_TABLES:
        return f"has column(s) the {table} table does not have: {', '.join(unknown[:4])}"
    for n, t in zip(names, types):
        if n in schema_cols and n not in TEXT_COLUMNS and (pa.types.is_string(t) or pa.types.is_large_string(t)):
            return f"stores {n!r} as text, where the schema has numbers (see runstore/schema.py)"
    return None


def columns(table: str) -> list[str]:
    """All columns of `table` in order, key columns first."""
    spec = TABLES[table]
    key = CASE_KEY if spec["case"] else []
    return key + [c for c in spec["columns"] if c not in key]

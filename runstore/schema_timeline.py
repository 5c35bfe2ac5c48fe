"""The run store's timeline tables (issue 24), part of `runstore.schema.TABLES`: kept apart only so that neither module
passes 400 lines. runstore/schema.py's docstring says what every table's columns are and how a value that could not
be measured is written; these follow it.

`perfmodel collect --timeline` (collectors/sweep/timeline_phase.py) records one Proton-instrumented launch per
(stage, config) and writes, per case, `timeline` (the scopes of the programs of a few SMs), `timeline_figures` (the
derived figures over every SM) and last `timeline_cases` (one row: the verdict, the instrumentation overhead and
where the trace is), which is what `--resume` skips.
"""

from __future__ import annotations

TIMELINE_TABLES: dict[str, dict] = {
    "timeline": {
        "case": True,
        "doc": "Proton intra-kernel scopes of one instrumented launch (collectors/timeline/read.py): one row per "
               "closed scope of each recorded warp (one warp per warp group) of each program of the SMs kept "
               "(timeline_cases.kept_sms; the figures are over every SM).",
        "columns": {
            "kernel": "kernel name",
            "sm": "SM the program ran on (%smid)",
            "program": "program (CTA) id",
            "warp": "warp of the program that recorded the scope",
            "warp_group": "warp // 4",
            "partition": "warp-specialize partition of the warp (0 = default, then the workers in declaration "
                         "order; null when the kernel's layout was not known)",
            "role": "the scope name's prefix (producer | consumer; '' for a name without one)",
            "scope": "scope name as the kernel declares it (e.g. consumer.softmax)",
            "item": "work item of the program, 0-based (the warp's n-th <role>.tile scope); null outside one",
            "iteration": "key-block iteration within the work item, 0-based (counted by the K/V waits); null for "
                         "per-item phases",
            "start_cycle": "scope start, SM clock cycles after the program's first recorded scope",
            "end_cycle": "scope end, SM clock cycles after the program's first recorded scope",
            "program_start_ns": "the program's first recorded scope, ns after the launch's first program's (global "
                                "timer)",
            "finalize_ns": "time the program spent copying its profile buffer out at its end (ns)",
            "lane": "Proton's display line within the warp (nested scopes get their own)",
        },
    },
    "timeline_figures": {
        "case": True,
        "doc": "Figures derived from one instrumented launch over every SM (collectors/timeline/figures.py: what each "
               "figure measures), each the median and p20-p80 over its samples. Read them with the case's "
               "timeline_cases row: a refused timeline's figures are kept but are not the bare kernel's.",
        "columns": {
            "figure": "time_share | busy_share | phase_cycles | iteration_cycles | load_hidden_share | "
                      "load_under_mma_share | pingpong_share",
            "partition_label": "<role><k>: the k-th partition of that role (producer0, consumer0, consumer1, ...)",
            "phase": "the scope phase or phase kind the row is about ('' where the figure has none)",
            "sample": "what one sample is: program (one recorded warp over its program) | work_item",
            "n": "samples summarized",
            "median": "median over the samples (unit)",
            "p20": "20th percentile over the samples (unit)",
            "p80": "80th percentile over the samples (unit)",
            "unit": "share (0..1) | cycles (SM clock cycles)",
        },
    },
    "timeline_cases": {
        "case": True,
        "doc": "One row per (implementation, config) the timeline phase took up: whether its timeline is the bare "
               "kernel's (status), the instrumented build's time against the bare build's by the same method "
               "(collectors.timeline.capture.timed_pair), and what was captured.",
        "columns": {
            "status": "ok | refused (recorded, but the instrumentation overhead was above 10%, could not be "
                      "measured, records were dropped, or the output differs from the bare kernel's) | failed | "
                      "not_measured (the case was not correct, or the kernel declares no Proton scopes)",
            "reason": "why, when status != ok (one or more sentences)",
            "kernel": "the instrumented Triton kernel's name",
            "tuned_config": "the kernel config that was instrumented (the one the sweep timed), else empty",
            "programs": "programs (CTAs) of the launch",
            "sampled_warps": "the warps Proton recorded, comma-separated (one per warp group of every partition)",
            "buffer_mib": "Proton's profile buffer of all programs (MiB)",
            "events": "scopes recorded over every SM",
            "sms": "SMs that ran a program",
            "kept_sms": "the SMs whose programs the timeline table and the trace file keep, comma-separated",
            "dropped_events": "records Proton's circular buffers overwrote (0 when the capture is complete)",
            "parse_problems": "records Proton's parser could not pair (scope mismatch, clock overflow)",
            "output_matches_bare": "the instrumented launch's output is bitwise the bare launch's (bool)",
            "trace_file": "Proton's Chrome trace of the kept SMs, relative to the run folder (gzip; ui.perfetto.dev "
                          "opens it); its .meta.json beside it holds the warp layout",
            "bare_ms": "median time of one call of the bare build (ms)",
            "bare_ms_p20": "20th percentile (ms)",
            "bare_ms_p80": "80th percentile (ms)",
            "instrumented_ms": "median time of one call of the instrumented build, Proton's session off (ms)",
            "instrumented_ms_p20": "20th percentile (ms)",
            "instrumented_ms_p80": "80th percentile (ms)",
            "overhead_pct": "(instrumented_ms - bare_ms) / bare_ms x 100; null when either could not be timed",
            "overhead_ci_low_pct": "bootstrap 95% interval of the overhead, low end (%)",
            "overhead_ci_high_pct": "bootstrap 95% interval of the overhead, high end (%)",
            "timing_method": "cuda_graph | host_loop: how both builds were timed (the same for both)",
            "graph_fallback": "why both were timed by the host loop and not by CUDA graph (null when by graph)",
            "wall_s": "seconds the case took (s)",
        },
    },
}

# the timeline tables' text columns (runstore.schema.TEXT_COLUMNS holds them with the others')
TIMELINE_TEXT_COLUMNS = frozenset({"scope", "figure", "partition_label", "phase", "sample", "sampled_warps",
                                   "kept_sms", "trace_file"})

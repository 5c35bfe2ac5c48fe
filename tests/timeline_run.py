"""SYNTHETIC timelines for the collect-phase, report, dashboard and `model score --phases` tests (never shipped, never
shown as measured): the synthetic Proton trace of tests/timeline_fixture.py standing in for what
collectors.timeline.case.record_case captures on the GPU, and a run folder of tests/synthetic_run.py with the
timeline tables added through the timeline phase's own writer (collectors.sweep.timeline_phase.store_case).
"""

from __future__ import annotations

from pathlib import Path

from collectors.sweep.timeline_phase import store_case
from collectors.timeline import case as C
from collectors.timeline.figures import figures
from collectors.timeline.read import load_trace, read_timeline
from runstore.writer import RunWriter
from tests import timeline_fixture as fx

# what the stand-in reports for the bare and the instrumented build (ms): made up, 4% overhead
BARE_MS, INSTRUMENTED_MS = 0.50, 0.52


def fake_case(impl: str = "stage4_overlap", instrumented_ms: float = INSTRUMENTED_MS, bare_ms: float = BARE_MS,
              kept_sms: int = 0) -> C.CaseTimeline:
    """A CaseTimeline as record_case returns it, from the synthetic trace (every SM kept unless `kept_sms`)."""
    from collectors.timeline.read import select_sms, spread_sms

    doc = load_trace(fx.FIXTURE)
    tl = read_timeline(doc, fx.LAYOUT)
    kept = spread_sms(tl["sm"].unique(), kept_sms)
    pct = (instrumented_ms - bare_ms) / bare_ms * 100
    row = {"kernel": fx.KERNEL, "programs": 2, "sampled_warps": ",".join(map(str, fx.LAYOUT.sampled_warps())),
           "buffer_mib": 0.1, "events": len(tl), "sms": int(tl["sm"].nunique()), "kept_sms": ",".join(map(str, kept)),
           "dropped_events": 0, "parse_problems": 0, "output_matches_bare": True, "bare_ms": bare_ms,
           "bare_ms_p20": bare_ms * 0.99, "bare_ms_p80": bare_ms * 1.01, "instrumented_ms": instrumented_ms,
           "instrumented_ms_p20": instrumented_ms * 0.99, "instrumented_ms_p80": instrumented_ms * 1.01,
           "overhead_pct": pct, "overhead_ci_low_pct": pct - 0.5, "overhead_ci_high_pct": pct + 0.5,
           "timing_method": "cuda_graph", "graph_fallback": None, "tuned_config": ""}
    C.judge(row, pct, 0, 0, None)
    meta = {"impl": impl, "kernel": fx.KERNEL, "layout": fx.LAYOUT.as_dict(), "kept_sms": kept, "synthetic": True}
    return C.CaseTimeline(row, tl[tl["sm"].isin(kept)].reset_index(drop=True), figures(tl), select_sms(doc, kept),
                          meta)


def add_timelines(run_dir: Path, config, impls=("stage4_overlap", "stage5_full"), refused=()) -> Path:
    """Store the synthetic timeline as each of `impls` at `config` in the run (those in `refused` with a 12%
    overhead, so they are refused)."""
    w = RunWriter(run_dir, {"command_line": ["tests/timeline_run.py"]}, resume=True)
    for impl in impls:
        store_case(w, impl, config, fake_case(impl, instrumented_ms=0.56 if impl in refused else INSTRUMENTED_MS))
    w.finish("complete")
    return run_dir

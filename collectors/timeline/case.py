"""Proton timelines, one case: an implementation at one config captured, read, turned into figures and judged, in the
order `perfmodel collect --timeline` runs them (collectors/sweep/timeline_phase.py does the bookkeeping).

    record_case(impl, config, tuned_config=..., seed=0, warmup_ms=25, rep_ms=100, keep_sms=4) -> CaseTimeline

1. the inputs: as many rotated input sets as the timings use (so none is served from L2), the first one captured;
2. one bare call with its Triton launch recorded (collectors.timeline.capture.jit_launches; a tuning stage runs the
   kernel config the sweep timed, `tuned_config`): the compiled kernel's partitions and grid plan the capture (one
   warp per warp group, a global buffer holding every record);
3. one launch of the instrumented build inside a Proton session; its Chrome trace is read into the `timeline`
   table (collectors/timeline/read.py) and turned into figures over every SM (collectors/timeline/figures.py);
   the table and the trace kept are those of `keep_sms` SMs spread over the GPU (the Gantt charts draw one);
4. bare and instrumented timed by the same method (`timed_pair`); the timeline is refused, with its reasons, when
   the instrumentation cost more than 10% (or could not be measured), Proton dropped or could not pair records, or
   the instrumented output differs from the bare one.

A kernel that makes no Triton launch or declares no Proton scope (a user's torch function, a `tl` kernel: Proton
3.6 instruments only the Gluon front end) is `not_measured` with the reason; any other failure is `failed`, and
the sweep goes on. Needs the GPU machine's packages only (torch, Triton 3.6, pandas, numpy).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

OK, REFUSED, FAILED, NOT_MEASURED = "ok", "refused", "failed", "not_measured"
# SMs whose programs the timeline table and the trace file keep (the figures are over every SM)
KEEP_SMS = 4


@dataclass
class CaseTimeline:
    """What one case produced: its timeline_cases columns (`row`, without the case key), the kept SMs' scopes
    (`timeline`, TIMELINE_COLUMNS), the figures over every SM (`figures`, FIGURE_COLUMNS), the kept SMs' trace
    document (`trace`) and what reading the trace again needs (`meta`: kernel, warp layout, capture plan); the
    last four None where the case ended before them."""

    row: dict
    timeline: pd.DataFrame | None = None
    figures: pd.DataFrame | None = None
    trace: dict | None = None
    meta: dict = field(default_factory=dict)


def not_run(status: str, reason: str) -> CaseTimeline:
    """A case that was not captured, with why."""
    return CaseTimeline({"status": status, "reason": reason})


def judge(row: dict, overhead_pct: float, dropped: int, parse_problems: int, output_diff: float | None) -> None:
    """Set row's status and reason: refused with every reason that applies, else ok."""
    from collectors.timeline.figures import overhead_refusal

    reasons = [overhead_refusal(overhead_pct)]
    if dropped:
        reasons.append(f"Proton's buffers dropped {dropped} records, so some scopes are missing.")
    if parse_problems:
        reasons.append(f"Proton could not pair {parse_problems} records (its log says scope mismatch or clock "
                       "overflow), so some scopes are missing.")
    if output_diff is not None:
        reasons.append(f"the instrumented kernel's output differs from the bare one's (max |diff| {output_diff:.3g}).")
    reasons = [r for r in reasons if r]
    row["status"], row["reason"] = (REFUSED, " ".join(reasons)) if reasons else (OK, "")


def record_case(impl, config, tuned_config: str | None = None, seed: int = 0, warmup_ms: float = 25,
                rep_ms: float = 100, keep_sms: int = KEEP_SMS) -> CaseTimeline:
    """Capture, read, time and judge `impl` (a kernels.registry.Impl) at `config` on this GPU (module docstring)."""
    import torch

    from collectors.timeline.capture import TimelineUnavailable
    from collectors.timeline.read import TraceUnreadable
    from collectors.timing.failures import one_line
    from kernels._launch import KernelUnsupported

    t0 = time.monotonic()
    raw = Path(tempfile.mkdtemp(prefix="timeline-raw-"))
    fast = getattr(_module_or_none(impl), "FAST", None)  # a stage's prepared launches (kernels/_fastlaunch.py)
    reset = fast.clear if fast is not None else (lambda: None)
    try:
        with impl.pinned(tuned_config):
            case = _capture(impl, config, raw, reset, seed, warmup_ms, rep_ms, keep_sms)
    except TimelineUnavailable as exc:
        case = not_run(NOT_MEASURED, str(exc))
    except (TraceUnreadable, KernelUnsupported) as exc:
        case = not_run(FAILED, str(exc))
    except Exception as exc:  # a compile error, a CUDA error: this case only
        case = not_run(FAILED, one_line(exc))
    finally:
        shutil.rmtree(raw, ignore_errors=True)
        reset()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    case.row.setdefault("tuned_config", tuned_config or "")
    case.row["wall_s"] = round(time.monotonic() - t0, 1)
    return case


def _module_or_none(impl):
    try:
        return impl.module()
    except Exception:
        return None


def _capture(impl, config, raw: Path, reset, seed: int, warmup_ms: float, rep_ms: float,
             keep_sms: int) -> CaseTimeline:
    import torch

    from collectors.timeline.capture import (TimelineUnavailable, jit_launches, plan_capture, record_launch,
                                             timed_pair)
    from collectors.timeline.figures import figures, overhead_pct
    from collectors.timeline.read import load_trace, read_timeline, select_sms, spread_sms, trace_events
    from collectors.timing.bench import make_input_sets
    from collectors.timing.measure import inputs_for_rotation, l2_bytes
    from collectors.timing.stats import ratio_gain_ci

    sets = make_input_sets(config, inputs_for_rotation(config, l2_bytes()), device="cuda", seed=seed)
    q, k, v = sets[0]

    def call(i: int = 0):
        return impl.launcher(*sets[i], causal=config.causal)

    reset()  # a prepared launch of earlier inputs would bypass the recorded JIT launch
    with jit_launches() as launches:
        bare_out = call()
    torch.cuda.synchronize()
    if not launches:
        raise TimelineUnavailable(f"{impl.name} made no Triton launch, so there is no kernel to instrument.")
    launch = launches[-1]
    plan = plan_capture(launch, config)
    row = {"status": FAILED, "reason": "", "kernel": launch.fn.__name__, "programs": plan.programs,
           "sampled_warps": ",".join(map(str, plan.sampled_warps)), "buffer_mib": round(plan.total_bytes / 2**20, 1)}
    if hasattr(impl.module(), "last_tuned_config"):
        row["tuned_config"] = str(impl.module().last_tuned_config() or "")
    mode = plan.mode()
    reset()
    rec = record_launch(call, raw / "capture", mode)
    row.update(dropped_events=rec.dropped_events, parse_problems=rec.parse_problems)
    same = bool(torch.equal(rec.output, bare_out))
    row["output_matches_bare"] = same
    diff = None if same else float((rec.output.float() - bare_out.float()).abs().max().item())
    doc = load_trace(rec.trace)
    if trace_events(doc).empty:
        raise TimelineUnavailable(f"{launch.fn.__name__} declares no Proton scope "
                                  "(triton.profiler.language.enter_scope / exit_scope in a Gluon kernel), so its "
                                  "instrumented build recorded nothing.")
    tl = read_timeline(doc, plan.layout)
    kept = spread_sms(tl["sm"].unique(), keep_sms)
    row.update(events=len(tl), sms=int(tl["sm"].nunique()), kept_sms=",".join(map(str, kept)))
    trace = select_sms(doc, kept)
    del doc
    figs = figures(tl)

    pair = timed_pair(call, len(sets), mode, reset=reset, warmup_ms=warmup_ms, rep_ms=rep_ms)
    pct = overhead_pct(pair.bare.median_ms, pair.instrumented.median_ms)
    try:
        _, low, high = ratio_gain_ci(pair.instrumented.samples_ms, pair.bare.samples_ms)
    except ValueError:  # fewer than two samples: no interval
        low = high = math.nan
    row.update(bare_ms=pair.bare.median_ms, bare_ms_p20=pair.bare.p20_ms, bare_ms_p80=pair.bare.p80_ms,
               instrumented_ms=pair.instrumented.median_ms, instrumented_ms_p20=pair.instrumented.p20_ms,
               instrumented_ms_p80=pair.instrumented.p80_ms, overhead_pct=pct, overhead_ci_low_pct=100 * low,
               overhead_ci_high_pct=100 * high, timing_method=pair.method, graph_fallback=pair.note or None)
    judge(row, pct, rec.dropped_events, rec.parse_problems, diff)
    meta = {"impl": impl.name, "config": config.as_dict(), "config_id": config.id, "kernel": row["kernel"],
            "layout": plan.layout.as_dict(), "plan": plan.as_dict(), "kept_sms": kept}
    return CaseTimeline(row, tl[tl["sm"].isin(kept)].reset_index(drop=True), figs, trace, meta)

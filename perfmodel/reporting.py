"""`perfmodel report`: one run's predicted-vs-measured report as a self-contained HTML file or as Markdown.

Order: gates first, then headline verdicts, stages, constraints (with the stall-to-constraint mapping), stalls,
roofline, batching, correctness, and with a baseline run the comparison. Every measured time is shown with its
interval (perfmodel/compare.py: the bootstrap 95% CI of the median, or p20–p80 labelled "no samples" for a run
made before samples were kept), in the tables and as error bars in the figures. Each section opens with one
sentence saying what it shows. The HTML inlines plotly.js once and stores every figure as JSON in a `<script type="application/json">`
block (the template they share once, beside them), so it opens offline and a program can read the figures back
(`figure_specs`); the Markdown carries the tables only. The stages section shows the predictive model beside the
bound (perfmodel.model_cases.model_table; `collect(..., predictive=False)`, `perfmodel report --no-model`, leaves it
out: it compiles each stage kernel).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from dataclasses import dataclass, field

import pandas as pd

from perfmodel import ablation, analysis, compare, figures, gpu_state, model_cases, timing_view
from perfmodel.constraint_map import mapping_rows
from perfmodel.correctness import CHECKED, correctness_summary, correctness_table
from perfmodel.gates import evaluate_gates
from perfmodel.runs import Run, gpu_name, kernel_code, unmeasured_reason

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
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.ablation.constraint_evidence
    stall_shift: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.ablation.stall_shift
    regressions: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.ablation.stage_regressions
    correctness: pd.DataFrame = field(default_factory=pd.DataFrame)  # perfmodel.correctness.correctness_table
    model: pd.DataFrame | None = None  # perfmodel.model_cases.model_table (None: not computed, e.g. --no-model)


def collect(run: Run, baseline: Run | None = None, model=None, predictive: bool = True) -> ReportData:
    """Every table of the report. `model`: an Einstein model (the shipped one when None). `predictive`: also
    predict each measured stage with the predictive model (model_cases.model_table: it compiles every stage kernel
    once per process, seconds each the first time)."""
    model = analysis._model(model)
    # measured times carry their intervals (perfmodel.compare): the tables show them, the figures draw them
    stages = gpu_state.with_gpu_state(compare.with_timing_intervals(analysis.stage_table(run, model), run), run)
    peers = gpu_state.with_gpu_state(compare.with_timing_intervals(analysis.peer_table(run, model), run), run)
    constraints = analysis.constraint_table(run, model)
    evidence = ablation.constraint_evidence(run, model)
    return ReportData(
        run=run, gates=evaluate_gates(run, model), stages=stages, peers=peers, constraints=constraints,
        stalls=analysis.stall_table(run, model),
        roofline=compare.with_timing_intervals(analysis.roofline_table(run, model), run),
        batching=compare.with_speedup_intervals(analysis.batching_table(run), run),
        batching_summary=analysis.batching_summary(run), correctness=correctness_table(run, model),
        headlines=analysis.headlines(stages, peers, constraints, evidence), baseline=baseline,
        comparison=compare.compare_runs(run, baseline) if baseline is not None else None,
        evidence=evidence, stall_shift=ablation.stall_shift(run, model),
        regressions=ablation.stage_regressions(run, model),
        model=model_cases.model_table(run, stages) if predictive else None,
    )


# ---- display tables (shared with the dashboard) -------------------------------------------------------------
def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _num(x, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "" if x is None else str(x)
    if not math.isfinite(v):
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _pct(x) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    return f"{v:+.1%}" if math.isfinite(v) else "—"


def _band(lo, hi) -> str:
    lo, hi = _num(lo), _num(hi)
    if lo == "—":
        return "—"
    return lo if lo == hi else f"{lo}–{hi}"


def _ms(x) -> str:
    """A time in ms to 4 significant figures ('—' when not measured)."""
    v = _f(x)
    return f"{v:.4g}" if math.isfinite(v) else "—"


def _span(low, high) -> str:
    """'0.4987–0.5012': an interval with as many significant figures (4 to 6) as it takes to tell its ends
    apart (a 95% CI of the median is often a few tenths of a percent wide); '—' without one."""
    lo, hi = _f(low), _f(high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "—"
    for digits in range(4, 7):
        a, b = f"{lo:.{digits}g}", f"{hi:.{digits}g}"
        if a != b:
            break
    return f"{a}–{b}"


def _interval_text(low, high, kind) -> str:
    """'0.4987–0.5012 (95% CI)', or '—' without an interval."""
    text = _span(low, high)
    if not kind or text == "—":
        return text
    return f"{text}: {kind}" if kind.endswith(")") else f"{text} ({kind})"  # no parentheses in parentheses


def _flag(v) -> str:
    """yes / no for a boolean flag, '—' where the run does not have it."""
    return "—" if v is None or pd.isna(v) else "yes" if bool(v) else "no"


def _time_columns(frame: pd.DataFrame) -> dict:
    """The time, its interval and the wide-CI flag of each row of a stage or peer table, and whether the GPU
    throttled while it was timed (for runs that sampled it)."""
    iv = compare.time_intervals(frame)
    wide = frame["wide_ci"] if "wide_ci" in frame.columns else [None] * len(frame)
    cols = {"time ms": [_ms(v) for v in frame["time_ms"]],
            "interval (ms)": [_interval_text(a, b, k) for a, b, k in
                              zip(iv["time_ms_low"], iv["time_ms_high"], iv["time_interval"])],
            "wide CI": [_flag(v) for v in wide]}
    if "timing_method" in frame.columns:  # which method gave each time (perfmodel/timing_view.py)
        cols["timed by"] = [timing_view.METHOD_LABELS.get(m, "—") if isinstance(m, str) else "—"
                            for m in frame["timing_method"]]
        cols["host-bound"] = [_flag(v) for v in frame["host_bound"]]
    if gpu_state.has_gpu_state(frame):
        cols["throttled"] = gpu_state.throttled_column(frame)
    return cols


def gates_display(gates: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "gate": gates["gate"], "stage": gates["stage"], "kind": gates["kind"], "status": gates["status"],
        "measured": [_num(v) for v in gates["measured"]], "threshold": gates["threshold"],
        "detail": gates["detail"], "plan says": gates["quote"],
    })


def _model_ms_text(status, ms) -> str:
    return _ms(ms) if status == "ok" else "no model" if status == "no_model" else "not measured"


def model_display_columns(stages: pd.DataFrame) -> dict:
    """The predictive model's columns of a stage table that carries them (model_cases.with_model): its time beside
    the bound's, its error on the time, its binding term and, where it has no prediction, why."""
    if "model_status" not in stages.columns:
        return {}
    status = stages["model_status"].fillna("not_measured")
    return {
        "bound ms": [_ms(v) for v in stages["bound_time_ms"]],
        "model ms": [_model_ms_text(s, v) for s, v in zip(status, stages["model_ms"])],
        "err vs model": [_pct(v) if s == "ok" else "—" for s, v in zip(status, stages["model_err"])],
        "model binding": [b if s == "ok" and isinstance(b, str) else "—"
                          for s, b in zip(status, stages["model_binding"])],
        "model: why none": [r if s != "ok" and isinstance(r, str) else "" for s, r in
                            zip(status, stages["model_reason"])],
    }


def stages_display(stages: pd.DataFrame) -> pd.DataFrame:
    """A stage table for people; with the model's columns (model_cases.with_model) the model's time and error too
    (err vs model is model_ms / measured_ms - 1 on the time, as `perfmodel model score` gives it)."""
    return pd.DataFrame({
        "config": stages["config_id"], "stage": stages["label"], "impl": stages["impl"],
        "status": stages["status"], "measured TFLOP/s": [_num(v) for v in stages["measured_tflops"]],
        **_time_columns(stages),
        "plan target": [_band(a, b) for a, b in zip(stages["einstein_abs_low_tflops"],
                                                    stages["einstein_abs_high_tflops"])],
        "err vs target": [_pct(v) for v in stages["einstein_abs_err"]],
        "plan gains on stage 0": [_band(a, b) for a, b in zip(stages["einstein_rel_low_tflops"],
                                                              stages["einstein_rel_high_tflops"])],
        "err vs gains": [_pct(v) for v in stages["einstein_rel_err"]],
        "bound": [_num(v) for v in stages["bound_tflops"]],
        "err vs bound": [_pct(v) for v in stages["bound_err"]],
        **model_display_columns(stages),
        "roofline": [_num(v) for v in stages["roofline_tflops"]],
        "of roofline": [_pct(v - 1) if pd.notna(v) else "—" for v in stages["roofline_frac"]],
    })


def peers_display(peers: pd.DataFrame) -> pd.DataFrame:
    """The peers measured in the run (analysis.peer_table), with each time's interval."""
    return pd.DataFrame({
        "config": peers["config_id"], "impl": peers["impl"], "status": peers["status"],
        "measured TFLOP/s": [_num(v) for v in peers["measured_tflops"]], **_time_columns(peers),
        "error": peers["error"].fillna("") if "error" in peers.columns else "",
    })


def constraints_display(constraints: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "config": constraints["config_id"], "constraint": [f"#{c} {n}" for c, n in
                                                           zip(constraints["constraint"], constraints["name"])],
        "removed by": constraints["removed_by"], "vs": constraints["before"],
        "claimed": [f"{_pct(a)}…{_pct(b)}" for a, b in zip(constraints["claimed_gain_low"],
                                                          constraints["claimed_gain_high"])],
        "measured": [_pct(v) for v in constraints["measured_gain"]],
        "share f": [f"{v:.1%}" if pd.notna(v) else "—" for v in constraints["attributable_fraction"]],
        "Amdahl max": [_pct(v) for v in constraints["amdahl_max_gain"]],
        "evidence": constraints["evidence"], "verdict": constraints["verdict"],
    })


def _ci_text(gain, lo, hi) -> str:
    if not pd.notna(gain):
        return "—"
    return f"{_pct(gain)} [{_pct(lo)}, {_pct(hi)}]" if pd.notna(lo) and pd.notna(hi) else _pct(gain)


def evidence_display(ev: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.ablation.constraint_evidence for people: the ablation first, the stage chain labelled."""
    return pd.DataFrame({
        "config": ev["config_id"], "constraint": [f"#{c} {n}" for c, n in zip(ev["constraint"], ev["name"])],
        "claimed": [f"{_pct(a)}…{_pct(b)}" for a, b in zip(ev["claimed_gain_low"], ev["claimed_gain_high"])],
        "switch": ev["switch"].fillna("—"),
        "ablation (best on vs off, 95% CI)": [_ci_text(g, lo, hi) for g, lo, hi in
                                              zip(ev["ablation_gain"], ev["ablation_ci_low"], ev["ablation_ci_high"])],
        "flip at tuned (95% CI)": [_ci_text(g, lo, hi) if st == "ok" else (st.replace("_", " ") if isinstance(st, str) else "—")
                                   for g, lo, hi, st in zip(ev["flip_gain"], ev["flip_ci_low"], ev["flip_ci_high"],
                                                            ev["flip_status"])],
        "stage chain": [f"{_ci_text(g, lo, hi)} ({t})" if t else "—" for g, lo, hi, t in
                        zip(ev["stage_chain_gain"], ev["stage_chain_ci_low"], ev["stage_chain_ci_high"],
                            ev["stage_chain"])],
        "Amdahl max": [_pct(v) for v in ev["amdahl_max_gain"]],
        "verdict": ev["verdict"], "why": ev["reason"].fillna(""),
    })


def stall_shift_display(shift: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Per config and switch, the stall reasons that moved most between technique off and on."""
    if shift.empty:
        return pd.DataFrame()
    rows = []
    for (cid, impl, sw), g in shift.groupby(["config_id", "impl", "switch"], sort=False):
        g = g.reindex(g["delta"].abs().sort_values(ascending=False).index).head(top)
        rows.append({"config": cid, "switch": sw, "largest shifts (off → on, share of stall cycles)": "; ".join(
            f"{r.reason} {r.off_fraction:.1%} → {r.on_fraction:.1%}" for r in g.itertuples())})
    return pd.DataFrame(rows)


def regressions_display(reg: pd.DataFrame) -> pd.DataFrame:
    if reg.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "config": reg["config_id"], "stage": reg["impl"], "vs": reg["before"],
        "slower by": [_pct(v) for v in reg["slowdown"]], "time (ms)": [f"{a:.4g} vs {b:.4g}" for a, b in
                                                                      zip(reg["time_ms"], reg["before_time_ms"])],
        "noise": reg["interval"], "ablation of what the stage adds": reg["explained_by"],
    })


def stalls_display(stalls: pd.DataFrame) -> pd.DataFrame:
    if stalls.empty:
        return pd.DataFrame()
    wide = stalls.pivot_table(index=["config_id", "stage_order", "impl"], columns="reason", values="fraction",
                              aggfunc="sum").reset_index().sort_values(["config_id", "stage_order"])
    reasons = [c for c in wide.columns if c not in ("config_id", "stage_order", "impl")]
    reasons.sort(key=lambda r: -wide[r].fillna(0).sum())
    out = wide[["config_id", "impl"]].rename(columns={"config_id": "config"})
    for r in reasons:
        out[r] = [f"{v:.0%}" if pd.notna(v) else "" for v in wide[r]]
    return out.reset_index(drop=True)


def roofline_display(roof: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "config": roof["config_id"], "impl": roof["impl"], "AI FLOP/B": [_num(v) for v in roof["arithmetic_intensity"]],
        "measured AI": [_num(v) for v in roof["measured_ai"]],
        "TFLOP/s": [_num(v) for v in roof["measured_tflops"]],
        "tensor": [_num(v) for v in roof["tensor_tflops"]], "exp unit": [_num(v) for v in roof["exp_ceiling_tflops"]],
        "memory": [_num(v) for v in roof["memory_ceiling_tflops"]], "limiter": roof["limiter"],
        "of roof": [f"{v:.0%}" if pd.notna(v) else "—" for v in roof["attainment"]],
    })


def batching_display(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "impl": summary["impl"], "shape": [f"H{h} S{s} D{d} {'causal' if c else 'full'} {t}" for h, s, d, c, t in
                                           zip(summary["H"], summary["S"], summary["D"], summary["causal"],
                                               summary["dtype"])],
        "B": [f"{a} → {b}" for a, b in zip(summary["B_from"], summary["B_to"])],
        "speed-up per sequence": [f"{v:.2f}×" if pd.notna(v) else "—" for v in summary["speedup"]],
        "gate": [f"≥ {v:g}×" for v in summary["threshold"]],
        "meets": ["yes" if m is True else "no" if m is False else "—" for m in summary["meets"]],
    })


def _ratio(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "∞" if v == math.inf else f"{v:.2f}" if math.isfinite(v) else "—"


NOT_MEASURED = "not measured"


def _ulps(v) -> str:
    """A whole number of ULPs ('∞' for a non-finite output)."""
    v = _f(v)
    return "∞" if v == math.inf else f"{v:,.0f}" if math.isfinite(v) else "—"


def _share(v) -> str:
    """A fraction as a percentage to two decimals, rounded down (99.999% reads 99.99%, never 100%)."""
    v = _f(v)
    return f"{math.floor(v * 10000) / 100:.2f}%" if math.isfinite(v) else "—"


# the rounded-reference columns (perfmodel.correctness.ROUNDED_COLUMNS) as people read them: (header, formatter)
_ROUNDED_DISPLAY = {"max_ulp": ("max ULPs vs rounded ref", _ulps), "exact_frac": ("exactly rounded", _share),
                    "rms_ulp": ("RMS ULPs vs rounded ref", _num)}


def _rounded_cells(values, measured, checked, fmt) -> list[str]:
    """A rounded-reference figure per row: the figure where measured, "not measured" for a checked row of a run
    without the figures, '—' for a row that was never compared with the reference (failed, unavailable)."""
    return [fmt(v) if m == True else NOT_MEASURED if c else "—"  # noqa: E712 (None- and NaN-safe)
            for v, m, c in zip(values, measured, checked)]


def correctness_display(corr: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.correctness.correctness_table for people: one row per case."""
    checked = list(corr["status"].isin(CHECKED))
    rounded = {header: _rounded_cells(corr[col], corr["rounded_measured"], checked, fmt)
               for col, (header, fmt) in _ROUNDED_DISPLAY.items()}
    return pd.DataFrame({
        "config": corr["config_id"], "impl": corr["impl"], "status": corr["status"],
        "max abs error": [_num(v) for v in corr["max_abs_err"]], "budget": [_num(v) for v in corr["budget_abs_err"]],
        "error / budget": [_ratio(v) for v in corr["err_over_budget"]],
        "within budget": [_flag(v) for v in corr["within_budget"]],
        **rounded,
        "plan allclose (rtol 1e-3, atol 2e-3)": [_flag(v) for v in corr["doc_allclose"]],
        "plan max error ≤ 0.06": [_flag(v) for v in corr["doc_max_err_ok"]],
        "error": corr["error"].fillna(""),
    })


def _summary_rounded(values, n_measured, n_checked, fmt) -> list[str]:
    """A worst rounded-reference figure per implementation, saying over how many cases when not all of them."""
    out = []
    for v, m, c in zip(values, n_measured, n_checked):
        if not c:
            out.append("—")
        elif not m:
            out.append(NOT_MEASURED)
        else:
            out.append(fmt(v) if m == c else f"{fmt(v)} ({m} of {c} cases)")
    return out


def rounded_summary_texts(corr: pd.DataFrame) -> dict[str, str]:
    """Over the cases of a correctness_table (possibly filtered): the worst max ULPs, the lowest share exactly
    rounded and the worst RMS ULPs against the rounded reference, as text ("not measured" for a run without them)."""
    checked = corr[corr["status"].isin(CHECKED)]
    measured = checked[checked["rounded_measured"] == True]  # noqa: E712 (None-safe)
    figures = {"worst max ULPs": (measured["max_ulp"].max(), _ulps),
               "lowest exactly rounded": (measured["exact_frac"].min(), _share),
               "worst RMS ULPs": (measured["rms_ulp"].max(), _num)}
    return {label: _summary_rounded([v], [len(measured)], [len(checked)], fmt)[0]
            for label, (v, fmt) in figures.items()}


def correctness_summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.correctness.correctness_summary for people: one row per implementation."""
    worst = {"worst max ULPs": ("worst_max_ulp", _ulps), "lowest exactly rounded": ("lowest_exact_frac", _share),
             "worst RMS ULPs": ("worst_rms_ulp", _num)}
    return pd.DataFrame({
        "impl": summary["impl"], "kind": summary["kind"],
        "checked": [f"{a} of {b}" for a, b in zip(summary["n_checked"], summary["n_cases"])],
        # an implementation never checked (failed, unavailable) has no count of checks that held: "—", not 0
        **{h: [str(v) if n else "—" for v, n in zip(summary[c], summary["n_checked"])] for h, c in (
            ("within budget", "n_within_budget"), ("plan allclose", "n_doc_allclose"),
            ("plan max error ≤ 0.06", "n_doc_max_err_ok"))},
        "worst error / budget": [_ratio(v) for v in summary["worst_err_over_budget"]],
        **{header: _summary_rounded(summary[col], summary["n_rounded_measured"], summary["n_checked"], fmt)
           for header, (col, fmt) in worst.items()},
    })


def _change_text(v) -> str:
    return f"{v:+.1f}%" if pd.notna(v) else "—"


def comparison_display(cmp: pd.DataFrame) -> pd.DataFrame:
    """perfmodel.compare.compare_runs for people: both medians with their intervals, the change and the range of
    changes the intervals allow, the verdict."""
    return pd.DataFrame({
        "config": cmp["config_id"], "impl": cmp["impl"], "baseline ms": [_ms(v) for v in cmp["time_ms_base"]],
        "baseline interval": [_span(a, b) for a, b in zip(cmp["time_ms_low_base"], cmp["time_ms_high_base"])],
        "this run ms": [_ms(v) for v in cmp["time_ms_new"]],
        "this run interval": [_span(a, b) for a, b in zip(cmp["time_ms_low_new"], cmp["time_ms_high_new"])],
        "change": [_change_text(v) for v in cmp["time_change_pct"]],
        "change range": [f"{_change_text(a)} … {_change_text(b)}" if pd.notna(a) and pd.notna(b) else "—"
                         for a, b in zip(cmp["change_low_pct"], cmp["change_high_pct"])],
        "intervals": cmp["interval"].fillna("—"), "verdict": cmp["verdict"],
    })


# ---- figures per section ------------------------------------------------------------------------------------
def section_figures(data: ReportData) -> dict[str, list]:
    figs: dict[str, list] = {k: [] for k in SECTION_INTRO}
    stages = model_cases.with_model(data.stages, data.model)
    why = unmeasured_reason(data.run)  # an --interpret run's charts say so rather than guess
    for cid in stages["config_id"].unique():
        s = stages[stages["config_id"] == cid]
        p = data.peers[data.peers["config_id"] == cid]
        per_config = [figures.stages_figure(s, p, why=why), figures.terms_figure(s, why=why)]
        if data.model is not None:
            per_config.append(figures.model_terms_figure(s))
        for f in per_config:
            f.update_layout(title=f"{f.layout.title.text} — {cid}")
        figs["stages"] += per_config
    for cid in data.evidence["config_id"].unique() if not data.evidence.empty else []:
        f = figures.constraints_figure(data.evidence[data.evidence["config_id"] == cid])
        f.update_layout(title=f"{f.layout.title.text} — {cid}")
        figs["constraints"].append(f)
    for cid in data.stalls["config_id"].unique():
        f = figures.stalls_figure(data.stalls[data.stalls["config_id"] == cid])
        f.update_layout(title=f"{f.layout.title.text} — {cid}")
        figs["stalls"].append(f)
    figs["roofline"].append(figures.roofline_figure(data.roofline, why=why))
    if not data.batching.empty:
        figs["batching"].append(figures.batching_figure(data.batching))
    if data.comparison is not None:
        figs["comparison"].append(figures.compare_figure(data.comparison))
    return figs


def section_tables(data: ReportData) -> dict[str, list[tuple[str, pd.DataFrame]]]:
    t = {
        "gates": [("", gates_display(data.gates))],
        "stages": [("", stages_display(model_cases.with_model(data.stages, data.model))),
                   ("Peers measured in the same run" + ("" if data.model is None else
                                                        f" ({model_cases.NO_MODEL_FOR_PEERS.rstrip('.')})"),
                    peers_display(data.peers)),
                   ("Stages slower than the stage before beyond noise (the check the plan forgot)",
                    regressions_display(data.regressions))],
        "constraints": [("Ablation: what each technique is worth alone (the fair measure)",
                         evidence_display(data.evidence)),
                        ("Stall reasons that moved when the technique was switched on",
                         stall_shift_display(data.stall_shift)),
                        ("Stage chain: stage k against stage k−1 (everything the stage file changes)",
                         constraints_display(data.constraints)),
                        ("How each constraint is measured", data.mapping)],
        "stalls": [("", stalls_display(data.stalls))],
        "roofline": [("", roofline_display(data.roofline))],
        "batching": [("", batching_display(data.batching_summary))],
        "correctness": [("Per implementation, over every config", correctness_summary_display(
                            correctness_summary(data.correctness))),
                        ("Per case", correctness_display(data.correctness))],
    }
    if data.comparison is not None:
        t["comparison"] = [("", comparison_display(data.comparison))]
    return t


# run.json `environment` key (collectors/env.py) -> header label, in header order
_ENV_LINES = (("driver_version", "driver"), ("cuda_version", "CUDA"), ("torch_version", "torch"),
              ("triton_version", "triton"), ("cudnn_version", "cuDNN"), ("ncu_version", "ncu"),
              ("git_commit", "commit"))


def _meta_lines(run: Run) -> list[tuple[str, str]]:
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
    and lacks (collectors.store_read.Run.missing_tables_problem)."""
    return [p for r in (data.run, data.baseline) if r is not None for p in [r.missing_tables_problem()] if p]


# ---- Markdown -----------------------------------------------------------------------------------------------
def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


TITLES = {"gates": "Gates", "headlines": "Headlines", "stages": "Stages: predicted vs measured",
          "constraints": "Constraints", "stalls": "Stall reasons", "roofline": "Roofline", "batching": "Batching",
          "correctness": "Correctness against the float64 reference", "comparison": "Comparison with the baseline run"}


def to_markdown(data: ReportData) -> str:
    out = [f"# Predicted vs measured: {data.run.run_id}", ""]
    for banner in banners(data):
        out += [f"> **Warning:** {_md_cell(banner)}", ""]
    out += [f"- **{k}**: {_md_cell(v)}" for k, v in _meta_lines(data.run)]
    if data.baseline is not None:
        out.append(f"- **baseline**: {data.baseline.run_id}")
    out += ["", "Figures are in the HTML version (`perfmodel report --format html`).", ""]
    tables = section_tables(data)
    for key in SECTION_INTRO:
        if key == "comparison" and data.comparison is None:
            continue
        out += [f"## {TITLES[key]}", "", SECTION_INTRO[key], ""]
        if key == "headlines":
            out += [f"- {h}" for h in data.headlines] + [""]
            continue
        for caption, df in tables.get(key, []):
            if caption:
                out += [f"**{caption}**", ""]
            out += [markdown_table(df), ""]
    return "\n".join(out)


# ---- HTML ---------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;color:#222}
h1{font-size:1.6rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
p.intro{color:#555;margin:.3rem 0 1rem} dl.meta{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dl.meta dt{font-weight:600} table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top} th{background:#f5f5f5}
td.pass{background:#e6f4ea} td.fail{background:#fde7e9} td.not_measured{background:#f1f3f4}
td.report{background:#fef7e0} .fig{margin:1rem 0} dd.warn{color:#a50e0e;font-weight:600}
p.banner{background:#fde7e9;border:1px solid #a50e0e;padding:.6rem 1rem;color:#a50e0e;font-weight:600}
"""

# every figure has the same template (chart_kit.LAYOUT's plotly_white, ~7 kB of JSON): it is stored once, in
# the block with id TEMPLATE_ID, and given back to each figure when it is drawn (and by figure_specs)
TEMPLATE_ID = "plotly-template"
_RENDER_JS = """
var template = JSON.parse(document.getElementById('""" + TEMPLATE_ID + """').textContent);
document.querySelectorAll('script.plotly-figure').forEach(function (s) {
  var spec = JSON.parse(s.textContent);
  if (spec.layout.template === undefined) { spec.layout.template = template; }
  Plotly.newPlot(s.dataset.target, spec.data, spec.layout, {responsive: true, displaylogo: false});
});
"""


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, row):
            cls = f' class="{v}"' if col == "status" and v in ("pass", "fail", "not_measured", "report") else ""
            cells.append(f"<td{cls}>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# plotly.js's "basic" partial bundle (bar, scatter, pie; MIT licence, perfmodel/data/plotly-basic.LICENSE), the
# npm package plotly.js-basic-dist-min at the version plotly.py itself embeds: 1.2 MB instead of the full 4.8 MB.
PLOTLY_BASIC = Path(__file__).resolve().parent / "data" / "plotly-basic.min.js"
PLOTLY_BASIC_VERSION = "4.1.1"
PLOTLY_BASIC_TRACES = frozenset({"bar", "scatter", "pie"})


def plotly_js(figs) -> str:
    """The plotly.js to embed: the basic bundle when every trace is one of its types and it matches plotly.py's
    plotly.js version, else the full bundle plotly.py ships (never a report whose charts cannot draw)."""
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    types = {trace.type for fig in figs for trace in fig.data}
    if types <= PLOTLY_BASIC_TRACES and get_plotlyjs_version() == PLOTLY_BASIC_VERSION and PLOTLY_BASIC.is_file():
        return PLOTLY_BASIC.read_text(encoding="utf-8")
    return get_plotlyjs()


_WARN = ' class="warn"'  # a header line that qualifies the run's figures (timed while throttled, other kernels)
_WARNED = ("throttled", "kernels")


def to_html(data: ReportData) -> str:
    figs = section_figures(data)
    tables = section_tables(data)
    parts = [f"<h1>Predicted vs measured: {html.escape(data.run.run_id)}</h1>"]
    parts += [f'<p class="banner" role="alert">{html.escape(b)}</p>' for b in banners(data)]
    parts.append('<dl class="meta">')
    parts += [f"<dt>{html.escape(k)}</dt><dd{_WARN if k in _WARNED else ''}>{html.escape(v)}</dd>"
              for k, v in _meta_lines(data.run)]
    if data.baseline is not None:
        parts.append(f"<dt>baseline</dt><dd>{html.escape(data.baseline.run_id)}</dd>")
    parts.append("</dl>")
    n = 0
    template = None
    for key in SECTION_INTRO:
        if key == "comparison" and data.comparison is None:
            continue
        parts += [f'<section id="{key}"><h2>{html.escape(TITLES[key])}</h2>',
                  f'<p class="intro">{html.escape(SECTION_INTRO[key])}</p>']
        if key == "headlines":
            parts.append("<ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in data.headlines) + "</ul>")
        for fig in figs.get(key, []):
            n += 1
            spec = fig.to_plotly_json()
            layout = dict(spec.get("layout", {}))
            if "template" in layout and (template is None or layout["template"] == template):
                template = layout.pop("template")  # the shared one: drawn with it, stored once
            spec = _figure_json({**spec, "layout": layout})
            parts.append(f'<div class="fig" id="fig-{n}"></div>'
                         f'<script type="application/json" class="plotly-figure" data-target="fig-{n}">{spec}</script>')
        for caption, df in tables.get(key, []):
            if caption:
                parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(_html_table(df))
        parts.append("</section>")
    parts.append(f'<script type="application/json" id="{TEMPLATE_ID}">{_figure_json(template or {})}</script>')
    title = html.escape(f"perfmodel report: {data.run.run_id}")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{plotly_js(f for fs in figs.values() for f in fs)}</script></head><body>"
            + "\n".join(parts) + f"<script>{_RENDER_JS}</script></body></html>")


def _figure_json(spec) -> str:
    """A figure (or template) as JSON that can sit inside a <script> block."""
    import plotly.io

    return plotly.io.json.to_json_plotly(spec).replace("</", "<\\/")


def build_report(run: Run, baseline: Run | None = None, fmt: str = "html", model=None,
                 predictive: bool = True) -> str:
    """The report text in `fmt` ("html" or "md"); `predictive=False` leaves the predictive model out."""
    data = collect(run, baseline, model, predictive)
    return to_html(data) if fmt == "html" else to_markdown(data)


def figure_specs(html_text: str) -> list[dict]:
    """The plotly figures embedded in a report, parsed back (for tests and tools)."""
    import re

    blocks = re.findall(r'<script type="application/json" class="plotly-figure"[^>]*>(.*?)</script>', html_text,
                        flags=re.S)
    shared = re.search(rf'<script type="application/json" id="{TEMPLATE_ID}">(.*?)</script>', html_text, flags=re.S)
    template = json.loads(shared.group(1).replace("<\\/", "</")) if shared else None
    specs = [json.loads(b.replace("<\\/", "</")) for b in blocks]
    for spec in specs:
        if template and "template" not in spec.get("layout", {}):
            spec.setdefault("layout", {})["template"] = template
    return specs
